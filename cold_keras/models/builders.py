"""Model builders: the training graph of every model name, and the inference graph cut from it.

The architectures themselves are in `cold_keras.models.feature_level` (one prediction stream) and
`cold_keras.models.fusion` (one branch per modality, fused); raw inputs in `cold_keras.models.raw`.
"""

import keras
import numpy as np

from cold_keras.hyperparameters import DEFAULT_HYPERPARAMETERS
from cold_keras.layers.cold_loss import ColdLoss
from cold_keras.layers.emotion_loss import DIMENSIONS, EmotionLoss, output_name
from cold_keras.layers.masked_temporal_pooling import MaskedTemporalPooling
from cold_keras.layers.presence_gate import PresenceGate
from cold_keras.models.emotion_model import EmotionModel
from cold_keras.models.feature_level import feature_fusion, transformer, unimodal
from cold_keras.models.fusion import cold_fusion, context_fusion, prediction_fusion
from cold_keras.models.graph import OUTPUT_LAYER_SUFFIX, UTTERANCE_SUFFIX, Graph, named, positive_int
from cold_keras.names import (
    AUDIO,
    AUDIO_PRESENT,
    MASK,
    MODEL_NAMES,
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


def resolve_hyperparameters(**hp):
    """Defaults of `build_model` updated with `hp`; raises ValueError naming an unknown key."""
    unknown = sorted(set(hp) - set(DEFAULT_HYPERPARAMETERS))
    if unknown:
        raise ValueError(f"Unknown model hyperparameter(s) {unknown}; known: {sorted(DEFAULT_HYPERPARAMETERS)}.")
    return {**DEFAULT_HYPERPARAMETERS, **hp}


def normalization_layer(key, stats, dim):
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
            clean training frames, `atypicality_reference`), reliability_correspondence=False
            (a monotone shift of the visual weight by the audio-visual mismatch of
            `AudioVisualCorrespondence`, trained self-supervised in the same fit with the loss
            weight lambda_correspondence=1.0), fusion_guard=False (a
            `FusionGuard` on the fused outputs, set from the validation partition after training),
            fallback_threshold=0.0 (in [0.5, 1): a `FrameFallback` moving each frame's fused
            prediction toward the branch its fusion weights trust beyond that weight; 0: off).

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
    audio_dim = positive_int("audio_dim", audio_dim)
    visual_dim = positive_int("visual_dim", visual_dim)
    for key in ("gru_units", "gru_layers", "latent_dim"):
        positive_int(key, hp[key])

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
    audio_norm = normalization_layer("audio_norm", hp["audio_norm"], audio_dim)
    visual_norm = normalization_layer("visual_norm", hp["visual_norm"], visual_dim)
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
    model_outputs = fusion_graph(
        name, task, sequence_level, hp, audio, visual, mask, targets, presence, corruption=corruption
    )

    # Config: the model's name is the model name; inputs and outputs are dicts keyed by name.
    extra = {CORRUPTION_TARGET_KEYS[m]: tensor for m, tensor in (corruption or {}).items()}
    return EmotionModel(inputs={**inputs, **targets, **extra}, outputs=model_outputs, name=name)


# One architecture function per model name: `Graph` (features, mask, presence, settings) -> `Wiring`.
# Every one builds its layers under the same names as before, so `.keras` files keep loading. To add
# a model: write its function in `cold_keras.models.feature_level` (one prediction stream) or
# `cold_keras.models.fusion` (one branch per modality), add it here and its name to
# `cold_keras.names.MODEL_NAMES` (and to MODELS_WITH_UNIMODAL_BRANCHES if it predicts per modality too).
ARCHITECTURES = {
    "audio": unimodal(AUDIO),
    "visual": unimodal(VISUAL),
    "feature_fusion": feature_fusion,
    "prediction_fusion": prediction_fusion,
    "context_fusion": context_fusion,
    "cold_fusion": cold_fusion,
    "transformer": transformer,
}


def fusion_graph(name, task, sequence_level, hp, audio, visual, mask, targets, presence, corruption=None):
    """The functional wiring of `build_model` from per-frame features to the loss layer's outputs.

    Shared by `build_model` (feature inputs) and `build_raw_model` (backbone features), so both
    build the same layers under the same names. `presence` is `[audio_present, visual_present]`
    from the `PresenceGate`s that zero-filled the absent frames of `audio` and `visual`. The model's
    own part comes from `ARCHITECTURES[name]`; the utterance pooling and the loss layer are common.
    """
    audio_present, visual_present = presence
    class_weights = hp["class_weights"] if task == "classification" else None
    wiring = ARCHITECTURES[name](Graph(task, hp, audio, visual, mask, presence))
    outputs, branches, latents = wiring.outputs, wiring.branches, wiring.latents

    if sequence_level:
        for branch in branches:
            for dimension in DIMENSIONS:
                key = output_name(branch, dimension)
                pooled = MaskedTemporalPooling(task, name=key + UTTERANCE_SUFFIX + "_pooling")(outputs[key], mask=mask)
                outputs[key + UTTERANCE_SUFFIX] = named(key + UTTERANCE_SUFFIX, pooled)

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
