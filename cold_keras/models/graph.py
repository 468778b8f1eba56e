"""What the architecture functions share: `Graph` in, `Wiring` out, and the names of the outputs.

An architecture function (one per model name, `cold_keras.models.builders.ARCHITECTURES`) receives a
`Graph` (the gated per-frame features, the padding mask, the presence flags and the settings) and
returns a `Wiring` (its named outputs and prediction branches).
"""

import keras

from cold_keras.layers.emotion_head import EmotionHead
from cold_keras.layers.emotion_loss import DIMENSIONS, output_name
from cold_keras.layers.temporal_block import TemporalBlock
from cold_keras.names import NUM_CLASSES

# Per-frame outputs besides the predictions.
AUDIO_WEIGHT = "audio_weight"
VISUAL_WEIGHT = "visual_weight"
AUDIO_SIGMA_NORM = "audio_sigma_norm"
VISUAL_SIGMA_NORM = "visual_sigma_norm"
UTTERANCE_SUFFIX = "_utterance"
# Output layer of output key k is named k + OUTPUT_LAYER_SUFFIX (the target inputs already use the
# names "valence" and "arousal"); `inference_model` cuts the training graph at these layers.
OUTPUT_LAYER_SUFFIX = "_output"


def positive_int(key, value):
    """`value` as an int; raises ValueError naming `key` unless it is a positive integer."""
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}.")
    return int(value)


def named(key, tensor):
    """Identity layer naming one model output (float32, so mixed precision never downcasts it)."""
    return keras.layers.Identity(dtype="float32", name=key + OUTPUT_LAYER_SUFFIX)(tensor)


def predictions(branch, outputs):
    """{"<branch>_valence": ..., "<branch>_arousal": ...} from a head's per-dimension outputs."""
    return {
        output_name(branch, dimension): named(output_name(branch, dimension), tensor)
        for dimension, tensor in zip(DIMENSIONS, outputs)
    }


class Graph:
    """What every architecture function receives: the gated per-frame features, the padding mask,
    the presence flags and the settings, with the two building blocks they share."""

    def __init__(self, task, hp, audio, visual, mask, presence):
        self.task, self.hp = task, hp
        self.audio, self.visual, self.mask, self.presence = audio, visual, mask, presence
        self.gru_units = positive_int("gru_units", hp["gru_units"])
        self.gru_layers = positive_int("gru_layers", hp["gru_layers"])
        self.latent_dim = positive_int("latent_dim", hp["latent_dim"])

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


class Wiring:
    """What an architecture function returns: its named outputs, its prediction branches ("" is the
    fused or only output) and, for COLD fusion, the latent distributions its loss needs."""

    def __init__(self, outputs, branches=("",), latents=None):
        self.outputs, self.branches, self.latents = outputs, branches, latents
