"""Sinusoidal position encoding added to a frame sequence (transformer baseline)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cold_keras")
class SinePositionEncoding(keras.layers.Layer):
    """Adds the sinusoidal position encoding of Vaswani et al. (2017) to `[B, T, D]` inputs.

        PE[t, 2i] = sin(t / max_wavelength^(2i / D)),   PE[t, 2i + 1] = cos(t / max_wavelength^(2i / D))
        output = sqrt(D) * inputs + PE       (the input scaling of Tsai et al.'s transformer)

    Works for any sequence length T (no weights).

    Args:
        max_wavelength: float. Longest wavelength. Defaults to 10000.
        scale_inputs: bool. Multiply the inputs by sqrt(D) first. Defaults to True.
        **kwargs: base layer arguments.

    Input/Output shape: `[B, T, D]`.

    >>> tuple(SinePositionEncoding()(keras.ops.zeros((1, 3, 4))).shape)
    (1, 3, 4)
    """

    def __init__(self, max_wavelength=10000.0, scale_inputs=True, **kwargs):
        super().__init__(**kwargs)
        if not float(max_wavelength) > 1.0:
            raise ValueError(f"max_wavelength must be greater than 1, got {max_wavelength!r}.")
        self.max_wavelength = float(max_wavelength)
        self.scale_inputs = bool(scale_inputs)

    def call(self, inputs):
        num_frames = ops.shape(inputs)[1]
        dim = inputs.shape[-1]
        positions = ops.cast(ops.arange(num_frames), "float32")
        index = ops.cast(ops.arange(dim), "float32")
        # Pairs (2i, 2i + 1) share a frequency; even channels take the sine, odd ones the cosine.
        frequency = ops.power(self.max_wavelength, -2.0 * ops.floor(index / 2.0) / float(dim))
        angles = ops.expand_dims(positions, -1) * ops.expand_dims(frequency, 0)
        even = ops.equal(ops.mod(ops.arange(dim), 2), 0)
        encoding = ops.where(ops.expand_dims(even, 0), ops.sin(angles), ops.cos(angles))
        x = inputs * math.sqrt(dim) if self.scale_inputs else inputs
        return x + ops.cast(ops.expand_dims(encoding, 0), x.dtype)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scale_inputs": self.scale_inputs,
        }
