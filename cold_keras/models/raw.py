"""Raw mode: the training model on face crops and log-mel patches, with backbones in front of the
fusion graph of `build_model`."""

import keras

from cold_keras.backbones.face_cnn import FaceCNN
from cold_keras.backbones.vggish import VGGish
from cold_keras.layers.emotion_loss import DIMENSIONS
from cold_keras.layers.presence_gate import PresenceGate
from cold_keras.models.builders import fusion_graph, normalization_layer, resolve_hyperparameters
from cold_keras.models.emotion_model import EmotionModel
from cold_keras.models.graph import positive_int
from cold_keras.names import AUDIO, AUDIO_PRESENT, MASK, MODEL_NAMES, TASKS, VISUAL, VISUAL_PRESENT


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
        positive_int(key, hp[key])
    face_shape = tuple(positive_int("face_shape", d) for d in face_shape)
    patch_shape = tuple(positive_int("patch_shape", d) for d in patch_shape)
    if len(face_shape) != 3 or face_shape[-1] != 3:
        raise ValueError(f"face_shape must be (height, width, 3), got {face_shape}.")
    if len(patch_shape) != 2:
        raise ValueError(f"patch_shape must be (frames, mel_bins), got {patch_shape}.")

    # Layers: the two backbones and the input normalisation.
    face_cnn = FaceCNN(**dict(visual_backbone or {}), name="visual_backbone")
    vggish = VGGish(**dict(audio_backbone or {}), name="audio_backbone")
    audio_norm = normalization_layer("audio_norm", hp["audio_norm"], patch_shape[-1])
    visual_norm = normalization_layer("visual_norm", hp["visual_norm"], face_shape[-1])

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
    model_outputs = fusion_graph(
        name, task, sequence_level, hp, audio, visual, inputs[MASK], targets, [audio_present, visual_present]
    )

    # Config: as `build_model`.
    return EmotionModel(inputs={**inputs, **targets}, outputs=model_outputs, name=name)
