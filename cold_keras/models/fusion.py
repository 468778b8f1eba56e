"""Architectures with one branch per modality and a fused prediction: prediction fusion, context
fusion and COLD fusion (with its reliability options, beyond the paper)."""

import math

import keras

from cold_keras.layers.confidence_weighted_prediction_fusion import (
    ConfidenceWeightedPredictionFusion,
)
from cold_keras.layers.correspondence import AudioVisualCorrespondence
from cold_keras.layers.emotion_loss import DIMENSIONS
from cold_keras.layers.equal_weight_fusion import EqualWeightFusion
from cold_keras.layers.frame_fallback import FrameFallback
from cold_keras.layers.gaussian_context_head import GaussianContextHead
from cold_keras.layers.reliability import (
    Atypicality,
    FusionGuard,
    NoveltyScore,
    PredictionAgreement,
    ReliabilityWeighting,
)
from cold_keras.layers.variance_norm_fusion import VarianceNormFusion
from cold_keras.models.graph import (
    AUDIO_SIGMA_NORM,
    AUDIO_WEIGHT,
    VISUAL_SIGMA_NORM,
    VISUAL_WEIGHT,
    Wiring,
    named,
    predictions,
)
from cold_keras.names import AUDIO, VISUAL


def prediction_fusion(g):
    """One g + head per modality, fused by `ConfidenceWeightedPredictionFusion`."""
    z_audio = g.temporal(AUDIO, g.audio)
    z_visual = g.temporal(VISUAL, g.visual)
    y_audio = g.head("audio_head")(z_audio)
    y_visual = g.head("visual_head")(z_visual)
    fusion_inputs = [list(y_audio), list(y_visual)]
    if g.task == "regression":
        fusion_inputs += [z_audio, z_visual]
    fused, w_audio, w_visual = ConfidenceWeightedPredictionFusion(g.task, name="prediction_fusion")(
        fusion_inputs, presence=g.presence
    )
    outputs = {**predictions("", fused), **predictions(AUDIO, y_audio), **predictions(VISUAL, y_visual)}
    outputs[AUDIO_WEIGHT] = named(AUDIO_WEIGHT, w_audio)
    outputs[VISUAL_WEIGHT] = named(VISUAL_WEIGHT, w_visual)
    return Wiring(outputs, ("", AUDIO, VISUAL))


def context_fusion(g):
    """Normalised, scaled contexts h_A, h_V of size `latent_dim`, their mean h_AV, one shared head."""
    # Each context is layer-normalised and divided by sqrt(latent_dim) before the shared head
    # (beyond the paper): the dense projection is otherwise unbounded, and at the paper's sizes
    # and rate the head's tanh saturates within the first epoch (COLD's contexts are held near
    # N(0, I) by its KL prior). The fixed 1/sqrt(K) keeps AdamW's per-weight steps from moving
    # the head's pre-activation K times faster than one input would.
    context_scale = 1.0 / math.sqrt(g.latent_dim)
    h_audio = keras.layers.LayerNormalization(epsilon=1e-5, name="audio_context_norm")(
        g.temporal(AUDIO, g.audio, g.latent_dim)
    )
    h_visual = keras.layers.LayerNormalization(epsilon=1e-5, name="visual_context_norm")(
        g.temporal(VISUAL, g.visual, g.latent_dim)
    )
    h_audio = keras.layers.Rescaling(context_scale, name="audio_context_scale")(h_audio)
    h_visual = keras.layers.Rescaling(context_scale, name="visual_context_scale")(h_visual)
    h_av = EqualWeightFusion(name="context_fusion")([h_audio, h_visual], presence=g.presence)
    predictor = g.head("predictor")
    outputs = {
        **predictions("", predictor(h_av)),
        **predictions(AUDIO, predictor(h_audio)),
        **predictions(VISUAL, predictor(h_visual)),
    }
    return Wiring(outputs, ("", AUDIO, VISUAL))


def atypicality_scores(g):
    """`[B, T, 2]` (audio, visual) `Atypicality` scores, each over the frames where its modality is present."""
    scores = []
    for modality, x, present in ((AUDIO, g.audio, g.presence[0]), (VISUAL, g.visual, g.presence[1])):
        reference = g.hp[f"{modality}_atypicality"]
        if not reference:
            raise ValueError(
                f"reliability_atypicality=True needs {modality}_atypicality, the reference "
                "{'center': [3 floats], 'scale': [3 floats]} of the clean training frames "
                "(cold_keras.layers.reliability.atypicality_reference)."
            )
        present_mask = keras.layers.Multiply(name=f"{modality}_present_frames")([g.mask, present])
        scores.append(Atypicality(**reference, name=f"{modality}_atypicality")(x, present_mask))
    return keras.layers.Concatenate(axis=-1, name="atypicality")(scores)


def correspondence_mismatch(g):
    """`[B, T, 1]` audio-visual mismatch of `AudioVisualCorrespondence` over the frames where both
    modalities are present (trained with its own self-supervised loss, `lambda_correspondence`)."""
    both = keras.layers.Multiply(name="both_present_frames")([g.mask, g.presence[0], g.presence[1]])
    seed = g.hp["seed"]
    mismatch, _ = AudioVisualCorrespondence(
        loss_weight=g.hp["lambda_correspondence"],
        seed=None if seed is None else int(seed) + 2,
        name="audio_visual_correspondence",
    )(g.audio, g.visual, both)
    return mismatch


def cold_fusion(g):
    """Gaussian contexts per modality, `VarianceNormFusion` (paper Eq. 1-2), a shared head, `ColdLoss`'s latents."""
    hp, mask = g.hp, g.mask
    h_audio, mu_audio, sigma_audio = GaussianContextHead(g.latent_dim, seed=hp["seed"], name="audio_gaussian")(
        g.temporal(AUDIO, g.audio)
    )
    visual_seed = None if hp["seed"] is None else int(hp["seed"]) + 1
    h_visual, mu_visual, sigma_visual = GaussianContextHead(g.latent_dim, seed=visual_seed, name="visual_gaussian")(
        g.temporal(VISUAL, g.visual)
    )
    h_av, w_audio, w_visual, n_audio, n_visual = VarianceNormFusion(
        hp["weight_convention"], name="variance_norm_fusion"
    )([h_audio, h_visual, sigma_audio, sigma_visual], presence=g.presence)
    predictor = g.head("predictor")
    options = ("reliability_novelty", "reliability_agreement", "reliability_atypicality", "reliability_correspondence")
    if any(hp[key] for key in options):
        y_audio, y_visual = predictor(h_audio), predictor(h_visual)
        columns = []
        if hp["reliability_novelty"]:
            columns.append(NoveltyScore(name="audio_novelty")(g.audio, mask))
            columns.append(NoveltyScore(name="visual_novelty")(g.visual, mask))
        if hp["reliability_agreement"]:
            columns.append(PredictionAgreement(name="prediction_agreement")(list(y_audio), list(y_visual), mask))
        weighting_inputs = [h_audio, h_visual, w_visual]
        if columns:
            weighting_inputs.append(
                columns[0]
                if len(columns) == 1
                else keras.layers.Concatenate(axis=-1, name="reliability_signals")(columns)
            )
        atypicality = atypicality_scores(g) if hp["reliability_atypicality"] else None
        correspondence = correspondence_mismatch(g) if hp["reliability_correspondence"] else None
        h_av, w_audio, w_visual = ReliabilityWeighting(name="reliability_weighting")(
            weighting_inputs,
            frame_mask=mask,
            presence=g.presence,
            atypicality=atypicality,
            correspondence=correspondence,
        )
        y_fused = predictor(h_av)
    else:
        y_fused, y_audio, y_visual = predictor(h_av), predictor(h_audio), predictor(h_visual)
    if hp["fallback_threshold"]:
        y_fused = FrameFallback(hp["fallback_threshold"], name="frame_fallback")(
            [[f, a, v] for f, a, v in zip(y_fused, y_audio, y_visual)], [w_audio, w_visual]
        )
    if hp["fusion_guard"]:
        y_fused = FusionGuard(len(DIMENSIONS), name="fusion_guard")(
            [[f, a, v] for f, a, v in zip(y_fused, y_audio, y_visual)]
        )
    outputs = {**predictions("", y_fused), **predictions(AUDIO, y_audio), **predictions(VISUAL, y_visual)}
    outputs[AUDIO_WEIGHT] = named(AUDIO_WEIGHT, w_audio)
    outputs[VISUAL_WEIGHT] = named(VISUAL_WEIGHT, w_visual)
    outputs[AUDIO_SIGMA_NORM] = named(AUDIO_SIGMA_NORM, n_audio)
    outputs[VISUAL_SIGMA_NORM] = named(VISUAL_SIGMA_NORM, n_visual)
    latents = {"audio_mu": mu_audio, "audio_sigma": sigma_audio, "visual_mu": mu_visual, "visual_sigma": sigma_visual}
    return Wiring(outputs, ("", AUDIO, VISUAL), latents)
