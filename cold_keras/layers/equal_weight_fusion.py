"""Equal-weight fusion of two latent contexts (context fusion baseline)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cold_keras")
class EqualWeightFusion(keras.layers.Layer):
    """Average of the audio and visual contexts: h_AV = (h_A + h_V) / 2.

    With presence flags, the average of the present contexts: (p_A h_A + p_V h_V) / max(p_A + p_V, 1).

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[h_audio, h_visual]`, each `[B, T, K]`.
        presence: optional list `[audio_present, visual_present]`, each `[B, T]` 0/1 flags: a frame
            with one modality absent takes the other's context alone (zeros if both are absent).

    Output shape: `[B, T, K]`.

    >>> tuple(EqualWeightFusion()([keras.ops.zeros((1, 2, 3)), keras.ops.ones((1, 2, 3))]).shape)
    (1, 2, 3)
    """

    def call(self, inputs, presence=None):
        h_audio, h_visual = inputs
        if presence is None:
            return 0.5 * (h_audio + h_visual)
        p_a = ops.expand_dims(ops.cast(presence[0], h_audio.dtype), -1)
        p_v = ops.expand_dims(ops.cast(presence[1], h_visual.dtype), -1)
        return (p_a * h_audio + p_v * h_visual) / ops.maximum(p_a + p_v, 1.0)

    def compute_mask(self, inputs, presence=None, mask=None):
        return None

    def compute_output_shape(self, inputs_shape, presence_shape=None):
        input_shape = inputs_shape
        return tuple(input_shape[0])
