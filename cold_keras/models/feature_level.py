"""Architectures with one prediction stream: the unimodal models, feature fusion and the crossmodal transformer."""

import keras

from cold_keras.layers.crossmodal_transformer_block import CrossmodalTransformerBlock
from cold_keras.layers.sine_position_encoding import SinePositionEncoding
from cold_keras.models.graph import Wiring, positive_int, predictions
from cold_keras.names import AUDIO, VISUAL


def unimodal(modality):
    """The architecture of model `modality` ("audio" or "visual"): g on that modality, then f."""

    def architecture(g):
        features = g.audio if modality == AUDIO else g.visual
        return Wiring(predictions("", g.head(f"{modality}_head")(g.temporal(modality, features))))

    return architecture


def feature_fusion(g):
    """g on the frame-wise concatenation [z_A, z_V], then f."""
    joint = keras.layers.Concatenate(axis=-1, name="feature_concat")([g.audio, g.visual])
    return Wiring(predictions("", g.head("av_head")(g.temporal("av", joint))))


def transformer(g):
    """Crossmodal transformer blocks in both directions over projected, position-encoded streams, then f."""
    hp = g.hp
    num_heads = positive_int("num_heads", hp["num_heads"])
    model_dim = positive_int("transformer_dim", hp["transformer_dim"])
    num_layers = positive_int("num_transformer_layers", hp["num_transformer_layers"])
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
    return Wiring(predictions("", g.head("av_head")(joint)))
