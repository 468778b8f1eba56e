"""Frame-wise emotion predictor head f (valence and arousal)."""

import keras
from keras import ops

from cold_keras.names import TASKS


@keras.saving.register_keras_serializable(package="cold_keras")
class EmotionHead(keras.layers.Layer):
    """Dense predictor mapping a per-frame context to one output per emotion dimension.

    Regression: `tanh(W h + b)` per dimension, `[B, T]` each, bounded to the label range [-1, 1].
    Classification: `num_classes` logits per dimension, `[B, T, num_classes]` each.
    The same instance can be called on several contexts (the shared predictor f of context and COLD
    fusion). Computes in float32 by default, so predictions are float32 under mixed precision.

    Args:
        task: str. "regression" or "classification". Defaults to "regression".
        num_dimensions: int. Number of emotion dimensions (valence, arousal). Defaults to 2.
        num_classes: int. Classes per dimension for classification. Defaults to 3.
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: `[B, T, K]` context.

    Output: tuple of `num_dimensions` tensors, `[B, T]` (regression) or `[B, T, num_classes]`.

    >>> valence, arousal = EmotionHead()(keras.ops.zeros((2, 5, 4)))
    >>> tuple(valence.shape)
    (2, 5)
    """

    def __init__(self, task="regression", num_dimensions=2, num_classes=3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        if int(num_dimensions) < 1:
            raise ValueError(f"num_dimensions must be a positive integer, got {num_dimensions!r}.")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes!r}.")
        self.task = task
        self.num_dimensions = int(num_dimensions)
        self.num_classes = int(num_classes)
        self.units_per_dimension = 1 if task == "regression" else self.num_classes
        self.dense = keras.layers.Dense(
            self.num_dimensions * self.units_per_dimension, dtype=self.dtype_policy, name="dense"
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, inputs):
        x = self.dense(inputs)
        outputs = []
        for d in range(self.num_dimensions):
            if self.task == "regression":
                outputs.append(ops.tanh(x[..., d]))
            else:
                start = d * self.num_classes
                outputs.append(x[..., start : start + self.num_classes])
        return tuple(outputs)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        frames = tuple(input_shape)[:-1]
        shape = frames if self.task == "regression" else frames + (self.num_classes,)
        return tuple(shape for _ in range(self.num_dimensions))

    def get_config(self):
        return {
            **super().get_config(),
            "task": self.task,
            "num_dimensions": self.num_dimensions,
            "num_classes": self.num_classes,
        }
