"""Equal-weight fusion of two latent contexts (context fusion baseline)."""

import keras


@keras.saving.register_keras_serializable(package="cold_keras")
class EqualWeightFusion(keras.layers.Layer):
    """Average of the audio and visual contexts: h_AV = (h_A + h_V) / 2.

    Args:
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[h_audio, h_visual]`, each `[B, T, K]`.

    Output shape: `[B, T, K]`.

    >>> tuple(EqualWeightFusion()([keras.ops.zeros((1, 2, 3)), keras.ops.ones((1, 2, 3))]).shape)
    (1, 2, 3)
    """

    def call(self, inputs):
        h_audio, h_visual = inputs
        return 0.5 * (h_audio + h_visual)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])
