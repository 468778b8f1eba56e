"""Utterance-level prediction as the masked mean of frame predictions."""

import keras
from keras import ops

from cold_keras.names import TASKS


@keras.saving.register_keras_serializable(package="cold_keras")
class MaskedTemporalPooling(keras.layers.Layer):
    """Masked mean over the frames of a sequence (sequence-level corpora such as IEMOCAP).

    Regression: y_utt = sum_i m_i y_i / sum_i m_i, `[B, T] -> [B]`.
    Classification: the masked mean of the frame probabilities, returned as log-probabilities,
    log(sum_i m_i softmax(z_i) / sum_i m_i), `[B, T, C] -> [B, C]` (usable as logits).
    A sequence without a valid frame is pooled over all its frames. Computes in float32 by default.

    Args:
        task: str. "regression" or "classification". Defaults to "regression".
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: `[B, T]` predictions or `[B, T, C]` logits.
        mask: `[B, T]` float frame mask (1 = real frame) or None.

    >>> pool = MaskedTemporalPooling()
    >>> float(pool(keras.ops.convert_to_tensor([[1.0, 3.0, 9.0]]), mask=[[1.0, 1.0, 0.0]])[0])
    2.0
    """

    def __init__(self, task="regression", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        self.task = task

    def call(self, inputs, mask=None):
        if mask is None:
            weights = ops.ones(ops.shape(inputs)[:2], dtype=inputs.dtype)
        else:
            weights = ops.cast(ops.convert_to_tensor(mask), inputs.dtype)
            empty = ops.sum(weights, axis=1, keepdims=True) <= 0
            weights = ops.where(empty, ops.ones_like(weights), weights)
        total = ops.sum(weights, axis=1)
        if self.task == "regression":
            return ops.sum(weights * inputs, axis=1) / total
        probabilities = ops.softmax(inputs, axis=-1)
        mean = ops.sum(ops.expand_dims(weights, -1) * probabilities, axis=1) / ops.expand_dims(total, -1)
        return ops.log(ops.maximum(mean, 1e-12))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        return shape[:1] + shape[2:]

    def get_config(self):
        return {**super().get_config(), "task": self.task}
