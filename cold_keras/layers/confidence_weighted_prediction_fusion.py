"""Late fusion of unimodal predictions weighted by per-frame confidences (prediction fusion)."""

import keras
from keras import ops

from cold_keras.layers.variance_norm_fusion import present_weights
from cold_keras.names import TASKS


def _safe_log(weight):
    # A weight of exactly 0 (absent modality) must not give -inf - -inf = NaN in the mixture.
    return ops.log(ops.maximum(weight, 1e-30))


@keras.saving.register_keras_serializable(package="cold_keras")
class ConfidenceWeightedPredictionFusion(keras.layers.Layer):
    """Confidence-weighted average of the audio and visual predictions of every frame.

    Per frame, with confidences c_A, c_V > 0:

        w_A = c_A / (c_A + c_V),   w_V = 1 - w_A

    Classification: c_m = max_c softmax(z_m)_c averaged over the emotion dimensions, and the fused
    output is the log of the mixture of probabilities, log(w_A p_A + w_V p_V) (computed with
    `logsumexp`), i.e. logits whose softmax is the weighted average of the unimodal probabilities.
    Regression: c_m = softplus(v_m . x_m + b_m) + epsilon, a learned positive confidence per frame from
    the unimodal features x_m (the temporal block's output), and the fused output is
    w_A y_A + w_V y_V. Computes in float32 by default.

    Args:
        task: str. "regression" or "classification". Defaults to "regression".
        epsilon: float > 0. Floor of the learned regression confidence. Defaults to 1e-4.
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: list `[audio_predictions, visual_predictions]` (classification) or
            `[audio_predictions, visual_predictions, audio_features, visual_features]` (regression),
            where `*_predictions` is a list with one tensor per emotion dimension (`[B, T]` values or
            `[B, T, C]` logits) and `*_features` is `[B, T, D]`.
        presence: optional list `[audio_present, visual_present]`, each `[B, T]` 0/1 flags; an
            absent modality gets a weight of exactly 0 (the other exactly 1).

    Output: tuple `(fused_predictions, audio_weight [B, T], visual_weight [B, T])` where
    `fused_predictions` is a list shaped like `audio_predictions`.

    >>> fusion = ConfidenceWeightedPredictionFusion(task="classification")
    >>> z = keras.ops.zeros((1, 2, 3))
    >>> fused, w_a, w_v = fusion([[z], [z]])
    >>> [float(x) for x in w_a[0]]
    [0.5, 0.5]
    """

    def __init__(self, task="regression", epsilon=1e-4, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}.")
        self.task = task
        self.epsilon = float(epsilon)
        if task == "regression":
            self.audio_confidence = keras.layers.Dense(1, dtype=self.dtype_policy, name="audio_confidence")
            self.visual_confidence = keras.layers.Dense(1, dtype=self.dtype_policy, name="visual_confidence")

    def build(self, input_shape):
        if self.task == "regression":
            if len(input_shape) != 4:
                raise ValueError(
                    "Regression prediction fusion takes [audio_predictions, visual_predictions, "
                    f"audio_features, visual_features], got {len(input_shape)} inputs."
                )
            self.audio_confidence.build(input_shape[2])
            self.visual_confidence.build(input_shape[3])

    def _confidences(self, inputs):
        if self.task == "classification":
            audio_predictions, visual_predictions = inputs[0], inputs[1]

            def confidence(predictions):
                maxima = [ops.max(ops.softmax(z, axis=-1), axis=-1) for z in predictions]
                return ops.mean(ops.stack(maxima, axis=0), axis=0)

            return confidence(audio_predictions), confidence(visual_predictions)
        audio_features, visual_features = inputs[2], inputs[3]
        c_audio = ops.softplus(ops.squeeze(self.audio_confidence(audio_features), -1)) + self.epsilon
        c_visual = ops.softplus(ops.squeeze(self.visual_confidence(visual_features), -1)) + self.epsilon
        return c_audio, c_visual

    def call(self, inputs, presence=None):
        audio_predictions, visual_predictions = inputs[0], inputs[1]
        c_audio, c_visual = self._confidences(inputs)
        audio_weight = c_audio / (c_audio + c_visual)
        visual_weight = 1.0 - audio_weight
        if presence is not None:
            audio_weight, visual_weight = present_weights(audio_weight, visual_weight, *presence)
        fused = []
        for y_audio, y_visual in zip(audio_predictions, visual_predictions):
            if self.task == "regression":
                fused.append(audio_weight * y_audio + visual_weight * y_visual)
            else:
                log_mixture = ops.logsumexp(
                    ops.stack(
                        [
                            _safe_log(ops.expand_dims(audio_weight, -1)) + ops.log_softmax(y_audio, axis=-1),
                            _safe_log(ops.expand_dims(visual_weight, -1)) + ops.log_softmax(y_visual, axis=-1),
                        ],
                        axis=0,
                    ),
                    axis=0,
                )
                fused.append(log_mixture)
        return fused, audio_weight, visual_weight

    def compute_mask(self, inputs, presence=None, mask=None):
        return None

    def compute_output_shape(self, inputs_shape, presence_shape=None):
        input_shape = inputs_shape
        prediction_shapes = [tuple(s) for s in input_shape[0]]
        frames = prediction_shapes[0][:2]
        return prediction_shapes, frames, frames

    def get_config(self):
        return {**super().get_config(), "task": self.task, "epsilon": self.epsilon}
