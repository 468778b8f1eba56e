"""The per-frame CNN backbone shared by `FaceCNN` and `VGGish`: conv blocks, then three dense layers."""

from pathlib import Path

import keras
import numpy as np
from keras import ops


class BackboneWeightsError(ValueError):
    """A backbone weight file that is missing, unreadable, or does not fit the backbone.

    Attributes:
        path: str. The weight file.
        reason: str. What is wrong with it.
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _int_tuple(key, value):
    values = (value,) if isinstance(value, int) else tuple(value)
    if not values or any(isinstance(v, bool) or int(v) != v or int(v) < 1 for v in values):
        raise ValueError(f"{key} must be a positive integer or a non-empty list of them, got {value!r}.")
    return tuple(int(v) for v in values)


@keras.saving.register_keras_serializable(package="cold_keras")
class Backbone(keras.layers.Layer):
    """A VGG-style CNN applied to every frame: conv blocks, pooling, then three dense layers.

    Each block is `convs_per_block` 3x3 ReLU convolutions ("same" padding; with `batch_norm`,
    convolution, batch normalisation, then ReLU) followed by a 2x2 max pooling. The pooled map is
    averaged over space (`pooling="average"`) or flattened
    (`pooling="flatten"`), then goes through two ReLU dense layers `fc_1`, `fc_2` of
    `dense_units` units and a linear dense layer `embedding` of `embedding_dim` units.

    Any leading axes of the input are folded into the batch, so one call embeds every frame of a
    `[B, T, *frame_shape]` tensor (time-distributed) and returns `[B, T, embedding_dim]`. The
    output is float32 under any dtype policy (the fusion model and its losses expect float32).

    With `freeze_trunk=True` only the last two dense layers (`fc_2`, `embedding`) are trainable:
    how a backbone is fine-tuned from pretrained weights (`load_weights_file`).

    Weight file format (`save_weights_file` / `load_weights_file`): a NumPy `.npz` archive with
    one array per variable, keyed `"<sublayer>/<variable>"`, e.g. `"conv_1_1/kernel"`
    `[3, 3, C_in, C_out]`, `"conv_1_1/bias"` (without batch normalisation), `"bn_1_1/gamma"`,
    `"bn_1_1/beta"`, `"bn_1_1/moving_mean"`, `"bn_1_1/moving_variance"` (with it), ...,
    `"fc_1/kernel"`, `"fc_2/bias"`, `"embedding/kernel"` `[dense_units, embedding_dim]`.
    Convolution `conv_<block>_<i>` counts from 1.

    Args:
        frame_rank: int. Rank of one frame: 3 for an image [H, W, C], 2 for a spectrogram
            patch [time, mel] (a channel axis is added).
        embedding_dim: int. Output size per frame.
        filters: list of int. Filters of each conv block.
        convs_per_block: int or list of int (one per block). Defaults to 1.
        dense_units: int. Units of `fc_1` and `fc_2`. Defaults to 512.
        pooling: str. "average" (global average pooling) or "flatten". Defaults to "average".
        batch_norm: bool. Batch normalisation after every convolution. Defaults to False.
        freeze_trunk: bool. Only `fc_2` and `embedding` trainable. Defaults to False.
        **kwargs: base layer arguments (name, dtype, ...).

    Input shape: `[..., *frame]` with the frame shape known. Output shape: `[..., embedding_dim]`.
    """

    def __init__(
        self,
        frame_rank,
        embedding_dim,
        filters,
        convs_per_block=1,
        dense_units=512,
        pooling="average",
        batch_norm=False,
        freeze_trunk=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if frame_rank not in (2, 3):
            raise ValueError(f"frame_rank must be 2 (spectrogram patch) or 3 (image), got {frame_rank!r}.")
        if pooling not in ("average", "flatten"):
            raise ValueError(f"pooling must be 'average' or 'flatten', got {pooling!r}.")
        self.frame_rank = int(frame_rank)
        self.embedding_dim = _int_tuple("embedding_dim", embedding_dim)[0]
        self.filters = _int_tuple("filters", filters)
        convs = _int_tuple("convs_per_block", convs_per_block)
        if len(convs) == 1:
            convs = convs * len(self.filters)
        if len(convs) != len(self.filters):
            raise ValueError(
                f"convs_per_block needs one value per block ({len(self.filters)}), got {convs_per_block!r}."
            )
        self.convs_per_block = convs
        self.dense_units = _int_tuple("dense_units", dense_units)[0]
        self.pooling = pooling
        self.batch_norm = bool(batch_norm)
        self.freeze_trunk = bool(freeze_trunk)

        self.trunk = []
        for block, (width, count) in enumerate(zip(self.filters, self.convs_per_block), start=1):
            for i in range(1, count + 1):
                self.trunk.append(
                    keras.layers.Conv2D(
                        width,
                        3,
                        padding="same",
                        activation=None if self.batch_norm else "relu",
                        use_bias=not self.batch_norm,
                        dtype=self.dtype_policy,
                        name=f"conv_{block}_{i}",
                    )
                )
                if self.batch_norm:
                    self.trunk.append(keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"bn_{block}_{i}"))
                    self.trunk.append(keras.layers.ReLU(dtype=self.dtype_policy, name=f"relu_{block}_{i}"))
            self.trunk.append(
                keras.layers.MaxPooling2D(2, padding="same", dtype=self.dtype_policy, name=f"pool_{block}")
            )
        if pooling == "average":
            self.pool = keras.layers.GlobalAveragePooling2D(dtype=self.dtype_policy, name="global_pool")
        else:
            self.pool = keras.layers.Flatten(dtype=self.dtype_policy, name="flatten")
        self.fc_1 = keras.layers.Dense(self.dense_units, activation="relu", dtype=self.dtype_policy, name="fc_1")
        self.fc_2 = keras.layers.Dense(self.dense_units, activation="relu", dtype=self.dtype_policy, name="fc_2")
        self.embedding = keras.layers.Dense(self.embedding_dim, dtype=self.dtype_policy, name="embedding")
        if self.freeze_trunk:
            self._freeze()

    @property
    def weighted_layers(self):
        """The sublayers holding weights, in order (convolutions and batch norms, fc_1, fc_2, embedding)."""
        return [
            layer
            for layer in self.trunk
            if layer.weights or isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization))
        ] + [self.fc_1, self.fc_2, self.embedding]

    def _freeze(self):
        for layer in self.weighted_layers[:-2]:
            layer.trainable = False
        self.freeze_trunk = True

    def _frame_shape(self, input_shape):
        frame = tuple(input_shape[-self.frame_rank :])
        if len(input_shape) < self.frame_rank + 1 or any(d is None for d in frame):
            raise ValueError(
                f"{self.name} needs inputs [..., *frame] with a known frame shape of rank "
                f"{self.frame_rank}, got {tuple(input_shape)}."
            )
        return frame + (1,) if self.frame_rank == 2 else frame

    def build(self, input_shape):
        shape = (None,) + self._frame_shape(input_shape)
        for layer in self.trunk + [self.pool, self.fc_1, self.fc_2, self.embedding]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        frame = self._frame_shape(inputs.shape)
        leading = ops.shape(inputs)[: len(inputs.shape) - self.frame_rank]
        x = ops.reshape(inputs, (-1,) + frame)
        x = ops.cast(x, self.compute_dtype)
        for layer in self.trunk:
            x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
        x = self.embedding(self.fc_2(self.fc_1(self.pool(x))))
        x = ops.cast(x, "float32")
        return ops.reshape(x, tuple(leading) + (self.embedding_dim,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[: len(input_shape) - self.frame_rank]) + (self.embedding_dim,)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")

    # Arguments a subclass fixes itself (e.g. FaceCNN's frame_rank); left out of its config.
    FIXED_ARGUMENTS = ()

    def get_config(self):
        config = {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "filters": list(self.filters),
            "convs_per_block": list(self.convs_per_block),
            "dense_units": self.dense_units,
            "pooling": self.pooling,
            "batch_norm": self.batch_norm,
            "freeze_trunk": self.freeze_trunk,
            "frame_rank": self.frame_rank,
        }
        return {key: value for key, value in config.items() if key not in self.FIXED_ARGUMENTS}

    # Weight files ------------------------------------------------------------------------

    def _variables_by_key(self):
        return {
            f"{layer.name}/{variable.name}": variable for layer in self.weighted_layers for variable in layer.weights
        }

    def save_weights_file(self, path):
        """Writes every weight to a `.npz` archive (format in the class docstring)."""
        if not self.built:
            raise ValueError(f"{self.name} has no weights yet; call it on a frame batch first.")
        path = Path(path)
        with open(path, "wb") as handle:  # np.savez would append ".npz" to another suffix
            np.savez(
                handle,
                **{key: np.asarray(keras.ops.convert_to_numpy(v)) for key, v in self._variables_by_key().items()},
            )
        return path

    def load_weights_file(self, path, freeze=True):
        """Loads pretrained weights from a `.npz` archive; by default only `fc_2`, `embedding` stay trainable.

        Args:
            path: str or Path. Archive in the format of the class docstring.
            freeze: bool. Freeze everything but the last two dense layers. Defaults to True.

        Raises:
            BackboneWeightsError: the file is missing or unreadable, lacks a variable, holds an
                unknown one, or a shape differs (naming the variable and both shapes).
            ValueError: the backbone is not built yet.
        """
        if not self.built:
            raise ValueError(f"{self.name} is not built; call it on a frame batch before loading weights.")
        path = Path(path)
        if not path.is_file():
            raise BackboneWeightsError(path, f"{self.name} weight file does not exist")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as error:
            raise BackboneWeightsError(path, f"not a NumPy .npz weight archive ({error})") from None
        variables = self._variables_by_key()
        missing = [key for key in variables if key not in arrays]
        unknown = [key for key in arrays if key not in variables]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
            if unknown:
                parts.append(f"has unknown entries {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}")
            raise BackboneWeightsError(path, f"does not match the {self.name} architecture: {'; '.join(parts)}")
        for key, variable in variables.items():
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise BackboneWeightsError(
                    path,
                    f"{key} has shape {tuple(arrays[key].shape)}, the {self.name} needs "
                    f"{tuple(variable.shape)} (crop size, mel bins, filters or dense units differ)",
                )
        for key, variable in variables.items():
            variable.assign(arrays[key].astype(keras.backend.standardize_dtype(variable.dtype)))
        if freeze:
            self._freeze()
