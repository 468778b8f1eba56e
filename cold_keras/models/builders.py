"""Model builders: the training graph of every model name, and the inference graph cut from it."""

import math

import keras
import numpy as np

from cold_keras.backbones.face_cnn import FaceCNN
from cold_keras.backbones.vggish import VGGish
from cold_keras.hyperparameters import DEFAULT_HYPERPARAMETERS
from cold_keras.layers.cold_loss import ColdLoss
from cold_keras.layers.confidence_weighted_prediction_fusion import (
    ConfidenceWeightedPredictionFusion,
)
from cold_keras.layers.crossmodal_transformer_block import CrossmodalTransformerBlock
from cold_keras.layers.emotion_head import EmotionHead
from cold_keras.layers.emotion_loss import DIMENSIONS, EmotionLoss, output_name
from cold_keras.layers.equal_weight_fusion import EqualWeightFusion
from cold_keras.layers.gaussian_context_head import GaussianContextHead
from cold_keras.layers.masked_temporal_pooling import MaskedTemporalPooling
from cold_keras.layers.presence_gate import PresenceGate
from cold_keras.layers.reliability import (
    Atypicality,
    FusionGuard,
    NoveltyScore,
    PredictionAgreement,
    ReliabilityWeighting,
)
from cold_keras.layers.sine_position_encoding import SinePositionEncoding
from cold_keras.layers.temporal_block import TemporalBlock
from cold_keras.layers.variance_norm_fusion import VarianceNormFusion
from cold_keras.models.emotion_model import EmotionModel
from cold_keras.names import (
    AUDIO,
    AUDIO_PRESENT,
    MASK,
    MODEL_NAMES,
    MODELS_WITH_UNIMODAL_BRANCHES,  # noqa: F401 (re-exported by cold_keras.models)
    NUM_CLASSES,
    TASKS,
    VISUAL,
    VISUAL_PRESENT,
)

FEATURE_KEYS = (AUDIO, VISUAL, MASK)
# Optional inputs: per-frame presence flags (None or left out of `inference_model`'s call = present).
PRESENCE_KEYS = (AUDIO_PRESENT, VISUAL_PRESENT)
# Training-only inputs of COLD fusion with `lambda_reliability` > 0: the frames a training-time
# corruption damaged, targets of the supervised reliability loss (never inputs of `inference_model`).
CORRUPTION_TARGET_KEYS = {AUDIO: "audio_corruption_target", VISUAL: "visual_corruption_target"}
# Per-frame outputs besides the predictions.
AUDIO_WEIGHT = "audio_weight"
VISUAL_WEIGHT = "visual_weight"
AUDIO_SIGMA_NORM = "audio_sigma_norm"
VISUAL_SIGMA_NORM = "visual_sigma_norm"
UTTERANCE_SUFFIX = "_utterance"
# Output layer of output key k is named k + OUTPUT_LAYER_SUFFIX (the target inputs already use the
# names "valence" and "arousal"); `inference_model` cuts the training graph at these layers.
OUTPUT_LAYER_SUFFIX = "_output"


def resolve_hyperparameters(**hp):
    """Defaults of `build_model` updated with `hp`; raises ValueError naming an unknown key."""
    unknown = sorted(set(hp) - set(DEFAULT_HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"Unknown model hyperparameter(s) {unknown}; known: {sorted(DEFAULT_HYPERPARAMETERS)}.")
    return {**DEFAULT_HYPERPARAMETERS, **hp}


def _positive_int(key, value):
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}.")
    return int(value)


def _normalization(key, stats, dim):
    """`keras.layers.Normalization` with fixed (mean, variance) of size `dim`, or None."""
    if stats is None:
        return None
    try:
        mean, variance = stats
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a pair (mean, variance), got {stats!r}.") from None
    mean = np.asarray(mean, dtype="float32").reshape(-1)
    variance = np.asarray(variance, dtype="float32").reshape(-1)
    if mean.shape != (dim,) or variance.shape != (dim,):
        raise ValueError(
            f"{key} needs a mean and a variance of {dim} values each (the feature size), got "
            f"{mean.shape[0]} and {variance.shape[0]}."
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance >= 0)):
        raise ValueError(f"{key} holds a non-finite mean or a negative/non-finite variance.")
    return keras.layers.Normalization(mean=mean, variance=variance, name=f"{key.split('_')[0]}_normalization")


def _named(key, tensor):
    """Identity layer naming one model output (float32, so mixed precision never downcasts it)."""
    return keras.layers.Identity(dtype="float32", name=key + OUTPUT_LAYER_SUFFIX)(tensor)


def _predictions(branch, predictions):
    """{"<branch>_valence": ..., "<branch>_arousal": ...} from a head's per-dimension outputs."""
    return {
        output_name(branch, dimension): _named(output_name(branch, dimension), tensor)
        for dimension, tensor in zip(DIMENSIONS, predictions)
    }


def build_model(name, *, audio_dim, visual_dim, task="regression", sequence_level=False, **hp):
    """Training model (functional) of one model name, with its losses and metrics inside the graph.

    Every model takes the same inputs, a dict of `"audio"` `[B, T, Da]`, `"visual"` `[B, T, Dv]`,
    `"mask"` `[B, T]` (1 = real frame), the optional presence flags `"audio_present"`,
    `"visual_present"` `[B, T]` (1 = the modality's features are real; pass None for all ones) and
    the targets `"valence"`, `"arousal"` `[B, T]` (float32 in [-1, 1] for regression, int32 class
    ids 0/1/2 for classification). The unimodal models ("audio", "visual") ignore the other
    modality. A modality's absent frames are zero-filled (`PresenceGate`) after the normalisation,
    so its features there cannot change any output; the fusion layers give it a weight of exactly 0
    there, and the losses leave those frames out of its unimodal and calibration terms. The loss
    layer at the end (`EmotionLoss`, `ColdLoss` for
    COLD fusion) adds the loss with `add_loss` and updates the streaming metrics, so compile with
    `model.compile(optimizer=...)` and no `loss`. Outputs (also of `inference_model`), all float32:

    * "valence", "arousal": the fused (or only) predictions, `[B, T]` tanh-bounded values in [-1, 1]
      (regression) or `[B, T, 3]` logits (classification);
    * "audio_valence", "audio_arousal", "visual_valence", "visual_arousal" for the models with
      unimodal branches (prediction, context and COLD fusion);
    * "audio_weight", "visual_weight" `[B, T]` fusion weights (COLD fusion; prediction fusion's
      confidence weights), "audio_sigma_norm", "visual_sigma_norm" `[B, T]` (COLD fusion);
    * with `sequence_level=True`, "<output>_utterance" for every prediction: the masked mean over
      the frames `[B]` (classification: log of the mean probabilities, `[B, 3]`).

    Architectures, with g = `TemporalBlock` (bidirectional GRU):

    * audio / visual: g on one modality, then `EmotionHead` (g's output layer).
    * feature_fusion: g on the frame-wise concatenation [z_A, z_V], then `EmotionHead`.
    * prediction_fusion: one g + head per modality, fused by `ConfidenceWeightedPredictionFusion`.
    * context_fusion: g_m with a dense output layer of size `latent_dim`, a layer norm and a fixed
      1/sqrt(latent_dim) scale gives h_m; h_AV = (h_A + h_V) / 2; one shared `EmotionHead` f gives
      Y_A, Y_V, Y_AV. (Norm and scale are beyond the paper: without them the shared head's tanh
      saturates at the paper's sizes and learning rate.)
    * cold_fusion: g_m followed by `GaussianContextHead` (mu_m, sigma_m; h_m sampled in training,
      mu_m at inference); `VarianceNormFusion` (paper Eq. 1-2); shared f; `ColdLoss` (Eq. 8).
    * transformer: per-modality dense projection to `transformer_dim` + `SinePositionEncoding`,
      `num_transformer_layers` `CrossmodalTransformerBlock`s per direction (A -> V: visual queries
      attend to the audio projection; V -> A likewise), concatenation of both streams, layer norm,
      `EmotionHead`.

    Args:
        name: str. One of `MODEL_NAMES`.
        audio_dim: int. Audio feature size Da.
        visual_dim: int. Visual feature size Dv.
        task: str. "regression" or "classification". Defaults to "regression".
        sequence_level: bool. Add utterance-level outputs and score the metrics on them (IEMOCAP).
            Defaults to False.
        **hp: hyperparameters, defaults in `DEFAULT_HYPERPARAMETERS`: gru_units=256, gru_layers=2,
            dropout=0.5, latent_dim=128, lambda_co_visual=1e-3, lambda_co_audio=1e-3,
            lambda_co_cross=1e-3, lambda_regu=1e-4, weight_convention="informativeness",
            calibration_standardize=False, calibration_temperature=1.0, lambda_weight=0.0
            (`ColdLoss`'s fused-weight calibration term, beyond the paper), num_heads=16,
            num_transformer_layers=3, transformer_dim=128 (divisible by num_heads),
            transformer_dropout=0.1, class_weights=None ([[w0, w1, w2] valence, [...] arousal];
            classification only), audio_norm=None / visual_norm=None ((mean, variance) baked in
            with `keras.layers.Normalization`), seed=None (latent sampling noise). Reliability
            options of COLD fusion, beyond the paper (`cold_keras.layers.reliability`), all off
            by default: lambda_reliability=0.0 (weight of the supervised reliability loss on the
            fused weights; adds the training-only inputs `CORRUPTION_TARGET_KEYS`),
            reliability_novelty=False (per-modality novelty of the normalised features fed to
            a learned correction of the weights), reliability_agreement=False (the distance of
            the two unimodal predictions fed to it), reliability_atypicality=False (a monotone
            shift of the weights away from the more atypical modality, `Atypicality`; needs
            audio_atypicality / visual_atypicality, the reference {"center", "scale"} of the
            clean training frames, `atypicality_reference`), fusion_guard=False (a
            `FusionGuard` on the fused outputs, set from the validation partition after training).

    Returns:
        `EmotionModel` (a functional keras.Model that accepts batches without the optional
        presence flags) named `name`, not compiled.

    Raises:
        ValueError: on an unknown model name, task or hyperparameter, or an invalid value.

    >>> model = build_model("cold_fusion", audio_dim=4, visual_dim=3, gru_units=8, latent_dim=4)
    >>> model.compile(optimizer="adam")
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model name {name!r}; choose one of {list(MODEL_NAMES)}.")
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}.")
    hp = resolve_hyperparameters(**hp)
    audio_dim = _positive_int("audio_dim", audio_dim)
    visual_dim = _positive_int("visual_dim", visual_dim)
    for key in ("gru_units", "gru_layers", "latent_dim"):
        _positive_int(key, hp[key])

    # Inputs: features, mask and targets (the loss layer needs the targets inside the graph).
    target_dtype = "float32" if task == "regression" else "int32"
    inputs = {
        AUDIO: keras.Input((None, audio_dim), dtype="float32", name=AUDIO),
        VISUAL: keras.Input((None, visual_dim), dtype="float32", name=VISUAL),
        MASK: keras.Input((None,), dtype="float32", name=MASK),
        AUDIO_PRESENT: keras.Input((None,), dtype="float32", name=AUDIO_PRESENT, optional=True),
        VISUAL_PRESENT: keras.Input((None,), dtype="float32", name=VISUAL_PRESENT, optional=True),
    }
    targets = {d: keras.Input((None,), dtype=target_dtype, name=d) for d in DIMENSIONS}
    mask = inputs[MASK]
    audio, visual = inputs[AUDIO], inputs[VISUAL]
    audio_norm = _normalization("audio_norm", hp["audio_norm"], audio_dim)
    visual_norm = _normalization("visual_norm", hp["visual_norm"], visual_dim)
    if audio_norm is not None and name != "visual":
        audio = audio_norm(audio)
    if visual_norm is not None and name != "audio":
        visual = visual_norm(visual)
    audio, audio_present = PresenceGate(name="audio_presence")(audio, inputs[AUDIO_PRESENT])
    visual, visual_present = PresenceGate(name="visual_presence")(visual, inputs[VISUAL_PRESENT])
    presence = [audio_present, visual_present]

    corruption = None
    if name == "cold_fusion" and hp["lambda_reliability"]:
        corruption = {
            modality: keras.Input((None,), dtype="float32", name=key, optional=True)
            for modality, key in CORRUPTION_TARGET_KEYS.items()
        }
    model_outputs = _fusion_graph(
        name, task, sequence_level, hp, audio, visual, mask, targets, presence, corruption=corruption
    )

    # Config: the model's name is the model name; inputs and outputs are dicts keyed by name.
    extra = {CORRUPTION_TARGET_KEYS[m]: tensor for m, tensor in (corruption or {}).items()}
    return EmotionModel(inputs={**inputs, **targets, **extra}, outputs=model_outputs, name=name)


def build_raw_model(
    name,
    *,
    face_shape,
    patch_shape,
    task="regression",
    sequence_level=False,
    visual_backbone=None,
    audio_backbone=None,
    visual_backbone_weights=None,
    audio_backbone_weights=None,
    **hp,
):
    """Training model of one model name on raw inputs: face crops and log-mel patches per frame.

    A `FaceCNN` embeds every face crop (512-d by default) and a `VGGish` every log-mel patch
    (128-d), both applied per frame (time-distributed), and their features feed the same graph
    as `build_model` (same layers, output names and losses), so every model name works. Inputs:

    * "visual" `[B, T, H, W, 3]` float32 face crops (pixel values, e.g. 0..255), normalised
      inside the model by `visual_norm` (per-channel mean, variance) when given;
    * "audio" `[B, T, P, M]` float32 log-mel patches (P spectrogram frames around each frame,
      M mel bins), normalised by `audio_norm` (per-mel-bin mean, variance) when given;
    * "mask" `[B, T]`, the optional presence flags and the targets "valence", "arousal", as in
      `build_model` (an absent modality's backbone features are zero-filled).

    `inference_model` cuts the prediction model from it as from any `build_model` model.

    Args:
        name: str. One of `MODEL_NAMES`.
        face_shape: (H, W, 3). Face crop size.
        patch_shape: (P, M). Log-mel patch size (frames, mel bins).
        task: str. "regression" or "classification". Defaults to "regression".
        sequence_level: bool. As in `build_model`. Defaults to False.
        visual_backbone: optional dict of `FaceCNN` arguments (filters, convs_per_block,
            dense_units, embedding_dim).
        audio_backbone: optional dict of `VGGish` arguments.
        visual_backbone_weights: optional path of a `.npz` weight file for the face backbone
            (format in `Backbone`); loaded weights leave only its last two dense layers trainable.
            Without it the backbone trains from scratch.
        audio_backbone_weights: optional path of a `.npz` weight file for the audio backbone.
        **hp: the hyperparameters of `build_model`; `audio_norm` / `visual_norm` hold M and 3
            values.

    Returns:
        `EmotionModel` named `name`, not compiled.

    Raises:
        ValueError: as `build_model`, or a bad shape or backbone argument.
        cold_keras.backbones.BackboneWeightsError: a weight file that is missing or does not fit.

    >>> model = build_raw_model("cold_fusion", face_shape=(16, 16, 3), patch_shape=(10, 8),
    ...                         visual_backbone={"filters": (4,), "dense_units": 8},
    ...                         audio_backbone={"filters": (4,), "dense_units": 8},
    ...                         gru_units=4, latent_dim=4)
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"Unknown model name {name!r}; choose one of {list(MODEL_NAMES)}.")
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}.")
    hp = resolve_hyperparameters(**hp)
    for key in ("gru_units", "gru_layers", "latent_dim"):
        _positive_int(key, hp[key])
    face_shape = tuple(_positive_int("face_shape", d) for d in face_shape)
    patch_shape = tuple(_positive_int("patch_shape", d) for d in patch_shape)
    if len(face_shape) != 3 or face_shape[-1] != 3:
        raise ValueError(f"face_shape must be (height, width, 3), got {face_shape}.")
    if len(patch_shape) != 2:
        raise ValueError(f"patch_shape must be (frames, mel_bins), got {patch_shape}.")

    # Layers: the two backbones and the input normalisation.
    face_cnn = FaceCNN(**dict(visual_backbone or {}), name="visual_backbone")
    vggish = VGGish(**dict(audio_backbone or {}), name="audio_backbone")
    audio_norm = _normalization("audio_norm", hp["audio_norm"], patch_shape[-1])
    visual_norm = _normalization("visual_norm", hp["visual_norm"], face_shape[-1])

    # Functional wiring: raw inputs -> per-frame features -> the fusion graph of `build_model`.
    target_dtype = "float32" if task == "regression" else "int32"
    inputs = {
        AUDIO: keras.Input((None,) + patch_shape, dtype="float32", name=AUDIO),
        VISUAL: keras.Input((None,) + face_shape, dtype="float32", name=VISUAL),
        MASK: keras.Input((None,), dtype="float32", name=MASK),
        AUDIO_PRESENT: keras.Input((None,), dtype="float32", name=AUDIO_PRESENT, optional=True),
        VISUAL_PRESENT: keras.Input((None,), dtype="float32", name=VISUAL_PRESENT, optional=True),
    }
    targets = {d: keras.Input((None,), dtype=target_dtype, name=d) for d in DIMENSIONS}
    audio, visual = inputs[AUDIO], inputs[VISUAL]
    if audio_norm is not None and name != "visual":
        audio = audio_norm(audio)
    if visual_norm is not None and name != "audio":
        visual = visual_norm(visual)
    audio = vggish(audio)
    visual = face_cnn(visual)
    # The backbones are built by now, so pretrained weights can be assigned.
    if visual_backbone_weights is not None:
        face_cnn.load_weights_file(visual_backbone_weights)
    if audio_backbone_weights is not None:
        vggish.load_weights_file(audio_backbone_weights)
    audio, audio_present = PresenceGate(name="audio_presence")(audio, inputs[AUDIO_PRESENT])
    visual, visual_present = PresenceGate(name="visual_presence")(visual, inputs[VISUAL_PRESENT])
    model_outputs = _fusion_graph(
        name, task, sequence_level, hp, audio, visual, inputs[MASK], targets, [audio_present, visual_present]
    )

    # Config: as `build_model`.
    return EmotionModel(inputs={**inputs, **targets}, outputs=model_outputs, name=name)


class _Graph:
    """What every architecture function receives: the gated per-frame features, the padding mask,
    the presence flags and the settings, with the two building blocks they share."""

    def __init__(self, task, hp, audio, visual, mask, presence):
        self.task, self.hp = task, hp
        self.audio, self.visual, self.mask, self.presence = audio, visual, mask, presence
        self.gru_units = _positive_int("gru_units", hp["gru_units"])
        self.gru_layers = _positive_int("gru_layers", hp["gru_layers"])
        self.latent_dim = _positive_int("latent_dim", hp["latent_dim"])

    def temporal(self, prefix, x, output_dim=None):
        """g: the `TemporalBlock` (bidirectional GRU) named `<prefix>_temporal`."""
        return TemporalBlock(
            output_dim,
            units=self.gru_units,
            num_layers=self.gru_layers,
            dropout=self.hp["dropout"],
            name=f"{prefix}_temporal",
        )(x, mask=self.mask)

    def head(self, name):
        """f: an `EmotionHead` of the task."""
        return EmotionHead(self.task, num_classes=NUM_CLASSES, name=name)


class _Wiring:
    """What an architecture function returns: its named outputs, its prediction branches ("" is the
    fused or only output) and, for COLD fusion, the latent distributions its loss needs."""

    def __init__(self, outputs, branches=("",), latents=None):
        self.outputs, self.branches, self.latents = outputs, branches, latents


def _unimodal(modality):
    def architecture(g):
        features = g.audio if modality == AUDIO else g.visual
        return _Wiring(_predictions("", g.head(f"{modality}_head")(g.temporal(modality, features))))

    return architecture


def _feature_fusion(g):
    joint = keras.layers.Concatenate(axis=-1, name="feature_concat")([g.audio, g.visual])
    return _Wiring(_predictions("", g.head("av_head")(g.temporal("av", joint))))


def _prediction_fusion(g):
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
    outputs = {**_predictions("", fused), **_predictions(AUDIO, y_audio), **_predictions(VISUAL, y_visual)}
    outputs[AUDIO_WEIGHT] = _named(AUDIO_WEIGHT, w_audio)
    outputs[VISUAL_WEIGHT] = _named(VISUAL_WEIGHT, w_visual)
    return _Wiring(outputs, ("", AUDIO, VISUAL))


def _context_fusion(g):
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
        **_predictions("", predictor(h_av)),
        **_predictions(AUDIO, predictor(h_audio)),
        **_predictions(VISUAL, predictor(h_visual)),
    }
    return _Wiring(outputs, ("", AUDIO, VISUAL))


def _atypicality_scores(g):
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


def _cold_fusion(g):
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
    if hp["reliability_novelty"] or hp["reliability_agreement"] or hp["reliability_atypicality"]:
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
        atypicality = _atypicality_scores(g) if hp["reliability_atypicality"] else None
        h_av, w_audio, w_visual = ReliabilityWeighting(name="reliability_weighting")(
            weighting_inputs, frame_mask=mask, presence=g.presence, atypicality=atypicality
        )
        y_fused = predictor(h_av)
    else:
        y_fused, y_audio, y_visual = predictor(h_av), predictor(h_audio), predictor(h_visual)
    if hp["fusion_guard"]:
        y_fused = FusionGuard(len(DIMENSIONS), name="fusion_guard")(
            [[f, a, v] for f, a, v in zip(y_fused, y_audio, y_visual)]
        )
    outputs = {**_predictions("", y_fused), **_predictions(AUDIO, y_audio), **_predictions(VISUAL, y_visual)}
    outputs[AUDIO_WEIGHT] = _named(AUDIO_WEIGHT, w_audio)
    outputs[VISUAL_WEIGHT] = _named(VISUAL_WEIGHT, w_visual)
    outputs[AUDIO_SIGMA_NORM] = _named(AUDIO_SIGMA_NORM, n_audio)
    outputs[VISUAL_SIGMA_NORM] = _named(VISUAL_SIGMA_NORM, n_visual)
    latents = {"audio_mu": mu_audio, "audio_sigma": sigma_audio, "visual_mu": mu_visual, "visual_sigma": sigma_visual}
    return _Wiring(outputs, ("", AUDIO, VISUAL), latents)


def _transformer(g):
    hp = g.hp
    num_heads = _positive_int("num_heads", hp["num_heads"])
    model_dim = _positive_int("transformer_dim", hp["transformer_dim"])
    num_layers = _positive_int("num_transformer_layers", hp["num_transformer_layers"])
    if model_dim % num_heads:
        raise ValueError(f"transformer_dim={model_dim} must be divisible by num_heads={num_heads}.")
    streams = {}
    for modality, x in ((AUDIO, g.audio), (VISUAL, g.visual)):
        x = keras.layers.Dense(model_dim, name=f"{modality}_projection")(x)
        streams[modality] = SinePositionEncoding(name=f"{modality}_position")(x)
    audio_stream, visual_stream = streams[AUDIO], streams[VISUAL]
    for i in range(num_layers):

        def block(direction):
            return CrossmodalTransformerBlock(
                num_heads=num_heads,
                dropout=hp["transformer_dropout"],
                name=f"{direction}_{i + 1}",
            )

        # Every layer attends to the source's low-level (projected) stream, as in Tsai et al.
        visual_stream = block("audio_to_visual")([visual_stream, streams[AUDIO]], mask=g.mask)
        audio_stream = block("visual_to_audio")([audio_stream, streams[VISUAL]], mask=g.mask)
    joint = keras.layers.Concatenate(axis=-1, name="crossmodal_concat")([visual_stream, audio_stream])
    joint = keras.layers.LayerNormalization(epsilon=1e-5, name="crossmodal_norm")(joint)
    return _Wiring(_predictions("", g.head("av_head")(joint)))


# One architecture function per model name: `_Graph` (features, mask, presence, settings) -> `_Wiring`.
# Every one builds its layers under the same names as before, so `.keras` files keep loading. To add
# a model: write its function here, add its name to `cold_keras.names.MODEL_NAMES` (and to
# MODELS_WITH_UNIMODAL_BRANCHES if it predicts per modality too).
ARCHITECTURES = {
    "audio": _unimodal(AUDIO),
    "visual": _unimodal(VISUAL),
    "feature_fusion": _feature_fusion,
    "prediction_fusion": _prediction_fusion,
    "context_fusion": _context_fusion,
    "cold_fusion": _cold_fusion,
    "transformer": _transformer,
}


def _fusion_graph(name, task, sequence_level, hp, audio, visual, mask, targets, presence, corruption=None):
    """The functional wiring of `build_model` from per-frame features to the loss layer's outputs.

    Shared by `build_model` (feature inputs) and `build_raw_model` (backbone features), so both
    build the same layers under the same names. `presence` is `[audio_present, visual_present]`
    from the `PresenceGate`s that zero-filled the absent frames of `audio` and `visual`. The model's
    own part comes from `ARCHITECTURES[name]`; the utterance pooling and the loss layer are common.
    """
    audio_present, visual_present = presence
    class_weights = hp["class_weights"] if task == "classification" else None
    wiring = ARCHITECTURES[name](_Graph(task, hp, audio, visual, mask, presence))
    outputs, branches, latents = wiring.outputs, wiring.branches, wiring.latents

    if sequence_level:
        for branch in branches:
            for dimension in DIMENSIONS:
                key = output_name(branch, dimension)
                pooled = MaskedTemporalPooling(task, name=key + UTTERANCE_SUFFIX + "_pooling")(outputs[key], mask=mask)
                outputs[key + UTTERANCE_SUFFIX] = _named(key + UTTERANCE_SUFFIX, pooled)

    loss_inputs = {"targets": targets, "mask": mask, "outputs": outputs}
    if name not in ("audio", "visual"):
        loss_inputs["presence"] = {AUDIO: audio_present, VISUAL: visual_present}
    loss_options = dict(
        task=task,
        branches=branches,
        class_weights=class_weights,
        sequence_level=sequence_level,
        num_classes=NUM_CLASSES,
    )
    if latents is not None:
        loss_inputs["latents"] = latents
        if corruption is not None:
            loss_inputs["corruption"] = corruption
        loss_layer = ColdLoss(
            lambda_co_visual=hp["lambda_co_visual"],
            lambda_co_audio=hp["lambda_co_audio"],
            lambda_co_cross=hp["lambda_co_cross"],
            lambda_regu=hp["lambda_regu"],
            weight_convention=hp["weight_convention"],
            standardize=hp["calibration_standardize"],
            temperature=hp["calibration_temperature"],
            lambda_weight=hp["lambda_weight"],
            lambda_reliability=hp["lambda_reliability"],
            name="cold_loss",
            **loss_options,
        )
    else:
        loss_layer = EmotionLoss(name="emotion_loss", **loss_options)
    model_outputs = loss_layer(loss_inputs)
    return model_outputs


def inference_model(training_model):
    """Prediction model cut from a training model at its named output layers (no targets, no loss).

    Inputs: "audio", "visual", "mask" and the optional "audio_present", "visual_present" (None = all
    ones; models saved before the flags existed have no such inputs). Outputs: the dict described
    in `build_model` (the same keys
    as the training model's outputs), sharing the training model's layers and weights. Layers such
    as dropout and the Gaussian sampling run in inference mode unless called with `training=True`.

    Args:
        training_model: keras.Model built by `build_model` (or loaded from a `.keras` file).

    Returns:
        keras.Model named "<name>_inference".

    Raises:
        ValueError: if the model lacks the feature inputs or named output layers of `build_model`.
    """
    layer_names = {layer.name for layer in training_model.layers}
    missing = [key for key in FEATURE_KEYS if key not in layer_names]
    if missing:
        raise ValueError(f"Model {training_model.name!r} has no input layer(s) {missing}; build it with build_model.")
    inputs = {key: training_model.get_layer(key).output for key in FEATURE_KEYS}
    inputs.update({key: training_model.get_layer(key).output for key in PRESENCE_KEYS if key in layer_names})
    outputs = {}
    for layer in training_model.layers:
        if layer.name.endswith(OUTPUT_LAYER_SUFFIX):
            outputs[layer.name[: -len(OUTPUT_LAYER_SUFFIX)]] = layer.output
    if not all(d in outputs for d in DIMENSIONS):
        raise ValueError(
            f"Model {training_model.name!r} has no output layers named "
            f"{[d + OUTPUT_LAYER_SUFFIX for d in DIMENSIONS]}; build it with build_model."
        )
    return EmotionModel(inputs=inputs, outputs=outputs, name=f"{training_model.name}_inference")
