"""Fusion of two latent contexts weighted by the norms of their scales (COLD fusion, paper Eq. 1-2)."""

import keras
from keras import ops

from cold_keras.names import WEIGHT_CONVENTIONS


def present_weights(audio_weight, visual_weight, audio_present, visual_present):
    """Weights with an absent modality at exactly 0 (and the other at 1); both 0 if both are absent.

    Multiplications by exact 0/1 flags only, so a present pair keeps its weights bit for bit.
    """
    p_a = ops.cast(audio_present, audio_weight.dtype)
    p_v = ops.cast(visual_present, visual_weight.dtype)
    both = p_a * p_v
    return both * audio_weight + p_a * (1.0 - p_v), both * visual_weight + p_v * (1.0 - p_a)


@keras.saving.register_keras_serializable(package="cold_keras")
class VarianceNormFusion(keras.layers.Layer):
    """Frame-wise weighted sum of the audio and visual contexts, weighted by ||sigma||_2.

    With n_m = ||sigma_m||_2 over the latent dimensions of each frame:

        informativeness (paper Eq. 2):  w_V = n_V / (n_V + n_A)
        uncertainty:                    w_V = n_A / (n_A + n_V)
        w_A = 1 - w_V,   h_AV = w_V h_V + w_A h_A                 (paper Eq. 1)

    With presence flags p_A, p_V (0 = the modality is absent on that frame) an absent modality gets
    a weight of exactly 0 and the other one exactly 1 (both 0 when both are absent):
        w_V' = p_V p_A w_V + p_V (1 - p_A),   w_A' = p_A p_V w_A + p_A (1 - p_V)

    In the paper's convention the norm measures how informative a modality is (the calibration loss
    drives 1/||sigma|| up where the error is large); the "uncertainty" convention reads the norm as a
    scale, so a modality with a large sigma gets a small weight. Computes in float32 by default.

    Args:
        convention: str. "informativeness" or "uncertainty". Defaults to "informativeness".
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: list `[h_audio, h_visual, sigma_audio, sigma_visual]`, each `[B, T, K]`.
        presence: optional list `[audio_present, visual_present]`, each `[B, T]` 0/1 flags.
            Defaults to every frame present.

    Output: tuple `(h_av [B, T, K], audio_weight [B, T], visual_weight [B, T],
    audio_sigma_norm [B, T], visual_sigma_norm [B, T])`, float32.

    >>> fusion = VarianceNormFusion()
    >>> h, w_a, w_v, n_a, n_v = fusion([keras.ops.zeros((1, 2, 3))] * 2
    ...                                + [keras.ops.ones((1, 2, 3)), 3 * keras.ops.ones((1, 2, 3))])
    >>> [round(float(x), 2) for x in w_v[0]]
    [0.75, 0.75]
    """

    def __init__(self, convention="informativeness", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if convention not in WEIGHT_CONVENTIONS:
            raise ValueError(f"convention must be one of {WEIGHT_CONVENTIONS}, got {convention!r}.")
        self.convention = convention

    def call(self, inputs, presence=None):
        h_audio, h_visual, sigma_audio, sigma_visual = inputs
        norm_audio = ops.sqrt(ops.sum(ops.square(sigma_audio), axis=-1))
        norm_visual = ops.sqrt(ops.sum(ops.square(sigma_visual), axis=-1))
        total = norm_audio + norm_visual
        if self.convention == "informativeness":
            visual_weight = norm_visual / total
        else:
            visual_weight = norm_audio / total
        audio_weight = 1.0 - visual_weight
        if presence is not None:
            audio_weight, visual_weight = present_weights(audio_weight, visual_weight, *presence)
        fused = ops.expand_dims(visual_weight, -1) * h_visual + ops.expand_dims(audio_weight, -1) * h_audio
        return fused, audio_weight, visual_weight, norm_audio, norm_visual

    def compute_mask(self, inputs, presence=None, mask=None):
        return None

    def compute_output_shape(self, inputs_shape, presence_shape=None):
        input_shape = inputs_shape
        h_shape = tuple(input_shape[0])
        frame_shape = h_shape[:-1]
        return h_shape, frame_shape, frame_shape, frame_shape, frame_shape

    def get_config(self):
        return {**super().get_config(), "convention": self.convention}
