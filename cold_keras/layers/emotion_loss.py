"""Loss layer of every model: the emotion loss L_emo added with `add_loss`, plus streaming metrics."""

import keras
import numpy as np
from keras import ops

from cold_keras import losses as cold_losses
from cold_keras import metrics as cold_metrics
from cold_keras import optimizers  # noqa: F401  registers cold_keras>AdamW for every model file that names it
from cold_keras.names import DIMENSIONS, TASKS

# Prefix of each prediction branch in output and metric names; "" is the fused (or only) output.
BRANCHES = ("", "audio", "visual")


def output_name(branch, dimension):
    """Output key of one branch and dimension: "valence", "audio_arousal", ..."""
    return f"{branch}_{dimension}" if branch else dimension


def utterance_targets(targets, mask, task):
    """Utterance-level targets from frame-broadcast targets `[B, T]`: masked mean / first frame."""
    if task == "classification":
        return targets[:, 0]
    weights = ops.cast(mask, "float32")
    return ops.divide_no_nan(ops.sum(weights * ops.cast(targets, "float32"), axis=1), ops.sum(weights, axis=1))


def stack_rows_of(tensors):
    """`ops.stack(tensors)` (on a new first axis) built as a concatenation, each distinct tensor expanded once.

    The same values as `ops.stack`, but no `Pack` op: TensorFlow 2.21's graph optimiser (grappler's
    arithmetic stage `ReplacePackWithTileReshape`) rewrites a stack of copies of one tensor into a
    `Tile` of the producing op's *first* output, which is another tensor when the copies are a later
    output of a multi-output op, such as the input pipeline's `IteratorGetNext` in `fit` and
    `evaluate`. The copies need not be copies when traced: the branch masks `mask * presence` become
    copies of `mask` once the optimiser has folded presence flags that are constant ones (a batch
    without flags). A concatenation is never rewritten so.
    """
    expanded, rows = {}, []
    for tensor in tensors:
        if id(tensor) not in expanded:
            expanded[id(tensor)] = ops.expand_dims(tensor, 0)
        rows.append(expanded[id(tensor)])
    return rows[0] if len(rows) == 1 else ops.concatenate(rows, axis=0)


class MeanOfMetrics(keras.metrics.Metric):
    """Mean of the results of other metrics (e.g. `ccc_mean` of `ccc_valence` and `ccc_arousal`).

    Holds no state of its own: its result follows the metrics it averages, which are updated and
    reset by their owner.
    """

    def __init__(self, metrics, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._sources = tuple(metrics)

    def update_state(self, *args, **kwargs):
        del args, kwargs

    def reset_state(self):
        pass

    def result(self):
        results = [ops.cast(m.result(), "float32") for m in self._sources]
        return ops.cast(ops.mean(ops.stack(results)), self.dtype)


@keras.saving.register_keras_serializable(package="cold_keras")
class EmotionLoss(keras.layers.Layer):
    """Adds the emotion loss of a model's outputs and updates its streaming metrics; returns the outputs.

    L_emo sums, over the prediction branches (the fused output Y_AV and, in fusion models, the
    unimodal Y_A and Y_V) and the dimensions (valence, arousal):

        regression:      (1 - CCC) + MSE over the valid frames (`losses.emotion_regression_loss`)
        classification:  class-weighted cross-entropy (`losses.weighted_cross_entropy`)

    Every branch and dimension is computed at once: targets, predictions and the per-branch masks are
    stacked into `[G, B, T]` tensors (G = branches x dimensions, in the order of `rows()`), the terms
    come from `losses.stacked_emotion_regression_loss` / `stacked_weighted_cross_entropy` (row g equals
    the per-branch function on branch g) and the streaming metrics from one stacked computation of
    their sufficient statistics (`metrics.ccc_statistics`, `metrics.confusion_matrices`), added to each
    metric's own variables. One graph instead of one per branch and dimension (the loss layer was
    40% of a COLD fusion training step's graph), and the same values.

    The term is cast to float32 (it would stay float16 under `mixed_float16` otherwise), added with
    `add_loss` and tracked by `keras.metrics.Mean(name="loss_emo")`. Streaming metrics per branch
    (prefix "" for the fused output, "audio_", "visual_"): regression `ccc_valence`, `ccc_arousal`,
    `ccc_mean`; classification `f1_valence`, `f1_arousal`, `f1_macro`. They accumulate over an epoch
    (Keras resets the metrics of sublayers at every epoch and evaluation) and are masked. With
    `sequence_level=True` the metrics score the utterance predictions (`<output>_utterance`) against
    the utterance labels (masked mean of the broadcast labels, or the first frame's class), while the
    loss stays frame-level.

    Build the training graph with the targets as model inputs and this layer at the end (the
    keras-io `captcha_ocr` pattern), then `compile(optimizer=...)` without a `loss`.

    Args:
        task: str. "regression" or "classification". Defaults to "regression".
        branches: sequence of str, subset of ("", "audio", "visual"). Defaults to ("",).
        class_weights: None or `[[w0, w1, w2] (valence), [w0, w1, w2] (arousal)]`. Defaults to None.
        sequence_level: bool. Score utterance-level predictions. Defaults to False.
        num_classes: int. Classes per dimension. Defaults to 3.
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: dict with "targets" (dict "valence", "arousal" `[B, T]`), "mask" `[B, T]` and
            "outputs" (dict of the model outputs, keyed "valence", "audio_arousal", ...), and
            optionally "presence" (dict "audio", "visual" `[B, T]` 0/1 flags): the unimodal
            branches are scored on the frames where their modality is present only.

    Output: `inputs["outputs"]`, unchanged.
    """

    def __init__(
        self,
        task="regression",
        branches=("",),
        class_weights=None,
        sequence_level=False,
        num_classes=3,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
        branches = tuple(branches)
        if not branches or any(b not in BRANCHES for b in branches) or len(set(branches)) != len(branches):
            raise ValueError(f"branches must be distinct values from {BRANCHES}, got {branches!r}.")
        if class_weights is not None:
            class_weights = [[float(w) for w in row] for row in class_weights]
            if len(class_weights) != len(DIMENSIONS) or any(
                len(row) != int(num_classes) or min(row) < 0 for row in class_weights
            ):
                raise ValueError(
                    "class_weights must be one list of "
                    f"{num_classes} non-negative weights per dimension {DIMENSIONS}, "
                    f"got {class_weights!r}."
                )
        self.task = task
        self.branches = branches
        self.class_weights = class_weights
        self.sequence_level = bool(sequence_level)
        self.num_classes = int(num_classes)
        self.loss_emo_tracker = keras.metrics.Mean(name="loss_emo")
        self.emotion_metrics = {}
        for branch in branches:
            prefix = f"{branch}_" if branch else ""
            kind = "ccc" if task == "regression" else "f1"
            per_dimension = []
            for dimension in DIMENSIONS:
                name = f"{prefix}{kind}_{dimension}"
                if task == "regression":
                    metric = cold_metrics.StreamingCCC(name=name)
                else:
                    metric = cold_metrics.StreamingMacroF1(num_classes=self.num_classes, name=name)
                self.emotion_metrics[output_name(branch, dimension)] = metric
                per_dimension.append(metric)
            mean_name = f"{prefix}ccc_mean" if task == "regression" else f"{prefix}f1_macro"
            self.emotion_metrics[f"{prefix}mean"] = MeanOfMetrics(per_dimension, name=mean_name)

    def compute_output_spec(self, inputs):
        # Fresh tensors: returning the input KerasTensors would make the functional graph cyclic.
        return {key: keras.KerasTensor(value.shape, dtype=value.dtype) for key, value in inputs["outputs"].items()}

    @staticmethod
    def branch_mask(branch, mask, presence=None):
        """Frames a branch is scored on: the mask, times the modality's presence for "audio"/"visual"."""
        if presence is None or branch not in presence:
            return mask
        return mask * ops.cast(presence[branch], "float32")

    def rows(self, branches=None):
        """(branch, dimension) of each row of the stacked tensors: branches outer, dimensions inner."""
        return [
            (branch, dimension)
            for branch in (self.branches if branches is None else branches)
            for dimension in DIMENSIONS
        ]

    def stack_rows(self, targets, outputs, mask, presence=None, branches=None, suffix=""):
        """Targets, predictions and masks of every branch and dimension stacked on a new first axis.

        Returns `(y_true, y_pred, masks)`: `[G, B, T]` targets (float32, or the integer class ids),
        `[G, B, T]` float32 predictions (`[G, B, T, C]` logits; `[G, B(, C)]` with `suffix="_utterance"`)
        and `[G, B, T]` float32 masks (`branch_mask` of each row's branch), rows as `rows(branches)`.
        """
        rows = self.rows(branches)
        masks = {branch: self.branch_mask(branch, mask, presence) for branch, _ in rows}
        y_true = stack_rows_of([targets[dimension] for _, dimension in rows])
        if self.task == "regression":
            y_true = ops.cast(y_true, "float32")
        y_pred = stack_rows_of([ops.cast(outputs[output_name(b, d) + suffix], "float32") for b, d in rows])
        return y_true, y_pred, stack_rows_of([masks[branch] for branch, _ in rows])

    def stacked_class_weights(self, branches=None):
        """`[G, C]` class weights of the rows (each row its dimension's), or None."""
        if self.class_weights is None:
            return None
        return np.asarray([self.class_weights[DIMENSIONS.index(d)] for _, d in self.rows(branches)], "float32")

    def emotion_terms(self, y_true, y_pred, masks, branches=None):
        """L_emo's terms, one per row of the stacked tensors (float32 `[G]`)."""
        if self.task == "regression":
            return cold_losses.stacked_emotion_regression_loss(y_true, y_pred, masks)
        return cold_losses.stacked_weighted_cross_entropy(y_true, y_pred, self.stacked_class_weights(branches), masks)

    def emotion_loss(self, targets, outputs, mask, presence=None):
        """L_emo summed over branches and dimensions (float32 scalar)."""
        mask = ops.cast(mask, "float32")
        y_true, y_pred, masks = self.stack_rows(targets, outputs, mask, presence)
        return ops.sum(self.emotion_terms(y_true, y_pred, masks))

    def update_emotion_metrics(self, targets, outputs, mask, presence=None, stacked=None):
        """Updates every branch's and dimension's metric from one stacked computation.

        `stacked`: the `(y_true, y_pred, masks)` of `stack_rows` when the caller has them (frame level).
        """
        rows = self.rows()
        if self.sequence_level:
            y_true, y_pred, masks = self.stack_rows(targets, outputs, mask, presence, suffix="_utterance")
            # Utterance labels: the masked mean of the broadcast labels, or the first frame's class.
            if self.task == "classification":
                y_true = y_true[:, :, 0]
            else:
                y_true = ops.divide_no_nan(ops.sum(masks * y_true, axis=2), ops.sum(masks, axis=2))
            weights = ops.cast(ops.sum(masks, axis=2) > 0, "float32")
        else:
            y_true, y_pred, weights = (
                stacked if stacked is not None else self.stack_rows(targets, outputs, mask, presence)
            )
        metrics = [self.emotion_metrics[output_name(branch, dimension)] for branch, dimension in rows]
        if self.task == "regression":
            statistics = ops.unstack(ops.reshape(cold_metrics.ccc_statistics(y_true, y_pred, weights), (-1,)))
            size = len(statistics) // len(metrics)
            for g, metric in enumerate(metrics):
                metric.add_statistics(statistics[g * size : (g + 1) * size])
        else:
            confusion = cold_metrics.confusion_matrices(y_true, y_pred, self.num_classes, weights)
            for metric, matrix in zip(metrics, ops.unstack(confusion)):
                metric.add_confusion(matrix)

    def call(self, inputs):
        targets, mask, outputs = inputs["targets"], inputs["mask"], inputs["outputs"]
        mask = ops.cast(mask, "float32")
        presence = inputs.get("presence")
        stacked = self.stack_rows(targets, outputs, mask, presence)
        loss_emo = ops.sum(self.emotion_terms(*stacked))
        self.add_loss(loss_emo)
        self.loss_emo_tracker.update_state(loss_emo)
        self.update_emotion_metrics(targets, outputs, mask, presence, stacked)
        return dict(outputs)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "task": self.task,
            "branches": list(self.branches),
            "class_weights": self.class_weights,
            "sequence_level": self.sequence_level,
            "num_classes": self.num_classes,
        }
