"""Per-frame fallback of the fused prediction toward the branch the fusion weights trust."""

import keras
from keras import ops


def fallback_share(audio_weight, visual_weight, threshold):
    """`[B, T]` share alpha in [0, 1] of the trusted branch: 0 while the larger weight is at most
    `threshold`, rising linearly to 1 where it reaches 1."""
    top = ops.maximum(audio_weight, visual_weight)
    return ops.clip((top - threshold) / (1.0 - threshold), 0.0, 1.0)


@keras.saving.register_keras_serializable(package="cold_keras")
class FrameFallback(keras.layers.Layer):
    """Moves the fused prediction of a frame toward the branch its fusion weights trust.

    With the frame's fusion weights w_A, w_V (w_A + w_V = 1; an absent modality at 0) and a threshold
    tau in [0.5, 1):

        alpha = clip((max(w_A, w_V) - tau) / (1 - tau), 0, 1)
        y = (1 - alpha) y_AV + alpha y_B,   B = audio where w_A > w_V, else visual

    Where the weights are balanced (the larger at most tau) the fused prediction passes unchanged;
    where they say one modality is unreliable the output moves toward the other branch's prediction,
    and reaches it where that branch holds the whole weight (e.g. the other modality is absent). The
    layer has no weights and acts at inference only (`training=True` passes the fused prediction), so
    the training objective is the model's own.

    Args:
        threshold: float in [0.5, 1). The larger weight beyond which the fallback starts.

    Call arguments:
        inputs: list of `num_dimensions` triples `[fused, audio, visual]` of same-shaped tensors
            `[B, T]` (regression) or `[B, T, C]` (classification logits).
        weights: list `[audio_weight, visual_weight]`, each `[B, T]`.

    Output: list of `num_dimensions` tensors, float32.
    """

    def __init__(self, threshold=0.75, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not 0.5 <= float(threshold) < 1.0:
            raise ValueError(f"threshold must be in [0.5, 1), got {threshold!r}.")
        self.threshold = float(threshold)

    def call(self, inputs, weights, training=False):
        fused = [ops.cast(triple[0], "float32") for triple in inputs]
        if training:
            return fused
        audio_weight, visual_weight = (ops.cast(w, "float32") for w in weights)
        alpha = fallback_share(audio_weight, visual_weight, self.threshold)
        audio_trusted = ops.cast(audio_weight > visual_weight, "float32")
        out = []
        for y, (_, y_audio, y_visual) in zip(fused, inputs):
            share, choose_audio = alpha, audio_trusted
            if len(y.shape) == len(alpha.shape) + 1:  # classification logits [B, T, C]
                share, choose_audio = ops.expand_dims(share, -1), ops.expand_dims(choose_audio, -1)
            trusted = choose_audio * ops.cast(y_audio, "float32") + (1.0 - choose_audio) * ops.cast(y_visual, "float32")
            out.append((1.0 - share) * y + share * trusted)  # exactly y at share 0, exactly the branch at 1
        return out

    def compute_output_shape(self, inputs_shape, weights_shape=None):
        return [tuple(triple[0]) for triple in inputs_shape]

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
