"""Bidirectional GRU temporal block g_m of COLD fusion and its baselines."""

import warnings

import keras
from keras import ops

from cold_keras.layers.projected_gru import ProjectedGRU, cudnn_blockers, gpu_available


def frame_mask_to_bool(mask, num_frames=None):
    """Boolean `[B, T]` frame mask from a float or bool mask, never empty along T.

    A sequence whose frames are all masked would break the cuDNN GRU kernel (and gives a 0 / 0 in a
    masked softmax), so its first frame is marked valid. Right padding is preserved.
    """
    mask = ops.convert_to_tensor(mask)
    if mask.dtype != "bool":
        mask = ops.greater(mask, 0.5)
    if num_frames is None:
        num_frames = ops.shape(mask)[1]
    first = ops.expand_dims(ops.equal(ops.arange(num_frames), 0), 0)
    empty = ops.logical_not(ops.any(mask, axis=1, keepdims=True))
    return ops.logical_or(mask, ops.logical_and(first, empty))


@keras.saving.register_keras_serializable(package="cold_keras")
class TemporalBlock(keras.layers.Layer):
    """Stacked bidirectional GRU followed by a frame-wise dense output layer.

    The temporal block g_m of the paper: `num_layers` bidirectional GRU layers with `units` per
    direction, `dropout` applied to the outputs of every GRU layer but the last (as PyTorch's
    `nn.GRU(dropout=...)` does), then `Dense(output_dim)` on every frame (left out when `output_dim`
    is None, for a model whose own head is the output layer). The GRUs keep Keras' default
    activations and no recurrent dropout, so TensorFlow can use the cuDNN kernel on a GPU; the frame
    mask must then be right-padded (padding at the end of each sequence).

    Args:
        output_dim: int or None. Size of the dense output layer; None for no output layer (the
            outputs are then the last GRU layer's `2 * units` features).
        units: int. GRU units per direction. Defaults to 256.
        num_layers: int. Number of bidirectional GRU layers. Defaults to 2.
        dropout: float in [0, 1). Dropout between GRU layers. Defaults to 0.5.
        output_activation: str or None. Activation of the output layer. Defaults to None (linear).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[B, T, D]` frame features.
        mask: `[B, T]` float (1 = real frame) or bool frame mask, or None. Padded frames do not
            influence the outputs of real frames. A sequence with no valid frame gets its first frame
            treated as valid (the cuDNN kernel fails on empty sequences).
        training: bool. Enables dropout.

    Input shape: `[B, T, D]`. Output shape: `[B, T, output_dim]` (`[B, T, 2 * units]` without an
    output layer).

    >>> block = TemporalBlock(output_dim=4, units=8)
    >>> tuple(block(keras.ops.zeros((2, 5, 3)), mask=keras.ops.ones((2, 5))).shape)
    (2, 5, 4)
    """

    def __init__(self, output_dim, units=256, num_layers=2, dropout=0.5, output_activation=None, **kwargs):
        super().__init__(**kwargs)
        if output_dim is not None and int(output_dim) < 1:
            raise ValueError(f"output_dim must be a positive integer or None, got {output_dim!r}.")
        if int(units) < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}.")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.output_dim = None if output_dim is None else int(output_dim)
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.output_activation = output_activation
        self.grus = []
        self.dropouts = []
        for i in range(self.num_layers):
            self.grus.append(
                keras.layers.Bidirectional(
                    ProjectedGRU(self.units, return_sequences=True, dtype=self.dtype_policy),
                    # An explicit backward layer: Bidirectional otherwise derives it by serialising
                    # the forward GRU a second time, and on reload that copy could come back with
                    # go_backwards=True for both directions.
                    backward_layer=ProjectedGRU(
                        self.units, return_sequences=True, go_backwards=True, dtype=self.dtype_policy
                    ),
                    merge_mode="concat",
                    dtype=self.dtype_policy,
                    name=f"bigru_{i + 1}",
                )
            )
            if i < self.num_layers - 1:
                self.dropouts.append(
                    keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"dropout_{i + 1}")
                )
        self.output_layer = None
        if self.output_dim is not None:
            self.output_layer = keras.layers.Dense(
                self.output_dim,
                activation=output_activation,
                dtype=self.dtype_policy,
                name="output_dense",
            )

    def build(self, input_shape):
        if gpu_available():
            for gru in self.grus:
                for layer in (gru.forward_layer, gru.backward_layer):
                    blockers = cudnn_blockers(layer)
                    if blockers:
                        warnings.warn(
                            f"{self.name}/{layer.name}: this GRU cannot use the cuDNN kernel: " + ", ".join(blockers),
                            stacklevel=2,
                        )
        shape = tuple(input_shape)
        for i, gru in enumerate(self.grus):
            gru.build(shape)
            shape = shape[:-1] + (2 * self.units,)
            if i < len(self.dropouts):
                self.dropouts[i].build(shape)
        if self.output_layer is not None:
            self.output_layer.build(shape)

    def call(self, inputs, mask=None, training=None):
        if mask is not None:
            mask = frame_mask_to_bool(mask, ops.shape(inputs)[1])
        x = inputs
        for i, gru in enumerate(self.grus):
            x = gru(x, mask=mask, training=training)
            if i < len(self.dropouts):
                x = self.dropouts[i](x, training=training)
        if self.output_layer is None:
            return x
        return self.output_layer(x)

    def compute_mask(self, inputs, mask=None):
        # The frame mask is consumed here; callers pass it explicitly to the layers that need it.
        return None

    def compute_output_shape(self, input_shape):
        size = 2 * self.units if self.output_dim is None else self.output_dim
        return tuple(input_shape)[:-1] + (size,)

    def get_config(self):
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "output_activation": self.output_activation,
        }
