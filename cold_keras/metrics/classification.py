"""Classification scores: confusion matrix, macro precision/recall/F1, calibration error, temperature scaling.

NumPy functions (`confusion_matrix`, `precision_recall_f1`, `reliability_bins`,
`expected_calibration_error`, `temperature_scale`, `apply_temperature`) score whole partitions after
prediction; `StreamingMacroF1` accumulates a confusion matrix over an epoch, so the logged value
equals `precision_recall_f1` on all the epoch's valid frames concatenated.
"""

import collections

import keras
import numpy as np
from keras import ops

# ----------------------------------------------------------------------------------------------------
# Macro precision, recall, F1
# ----------------------------------------------------------------------------------------------------


def _macro_scores(confusion):
    """Macro precision, recall, F1 from a [C, C] confusion matrix (rows true, columns predicted)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan"), float("nan"), float("nan")
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    return (
        float(precision[present].mean()),
        float(recall[present].mean()),
        float(f1[present].mean()),
    )


def confusion_matrix(y_true, y_pred, num_classes=3):
    """Confusion matrix `[C, C]` (rows: true class, columns: predicted class) of class ids.

    Args:
        y_true: int array-like. True class ids in [0, num_classes).
        y_pred: int array-like of class ids (same shape as `y_true`), or scores `[..., C]` (logits or
            probabilities, one more axis than `y_true`), reduced with argmax.
        num_classes: int. Defaults to 3.

    Returns:
        int64 array `[num_classes, num_classes]`.

    Raises:
        ValueError: on mismatched shapes or class ids outside [0, num_classes).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == y_true.ndim + 1:
        if y_pred.shape[-1] != num_classes:
            raise ValueError(f"scores have {y_pred.shape[-1]} classes on the last axis, expected {num_classes}.")
        y_pred = np.argmax(y_pred, axis=-1)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} do not match.")
    y_true = y_true.reshape(-1).astype(np.int64)
    y_pred = y_pred.reshape(-1).astype(np.int64)
    for label, values in (("y_true", y_true), ("y_pred", y_pred)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"{label} holds class id {values[bad][0]}, outside [0, {num_classes}).")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def precision_recall_f1(y_true, y_pred, num_classes=3):
    """Macro-averaged precision, recall and F1 (NumPy).

    Per class c: P_c = TP_c / (TP_c + FP_c), R_c = TP_c / (TP_c + FN_c), F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)
    (= 2 P_c R_c / (P_c + R_c)); an undefined ratio (0 / 0) counts as 0. The macro average runs over the
    classes that occur in `y_true` or `y_pred` (scikit-learn's default label set), so a class absent from
    both does not pull the average down. NaN for empty input.

    Args:
        y_true: int array-like. True class ids.
        y_pred: int array-like of class ids, or scores `[..., C]` reduced with argmax.
        num_classes: int. Defaults to 3.

    Returns:
        tuple of floats `(precision, recall, f1)`.

    >>> precision_recall_f1([0, 1, 2, 2], [0, 1, 2, 1])[2]
    0.7777777777777777
    """
    return _macro_scores(confusion_matrix(y_true, y_pred, num_classes))


def confusion_matrices(y_true, y_pred, num_classes=3, sample_weight=None):
    """`StreamingMacroF1`'s confusion-matrix updates of G series at once: float64 `[G, C, C]`.

    Row g is the matrix `StreamingMacroF1.update_state(y_true[g], y_pred[g], sample_weight[g])` adds
    (rows true class, columns predicted class; ids outside [0, C) are not counted); feed them with
    `StreamingMacroF1.add_confusion`.

    Args:
        y_true: int `[G, ...]` class ids, G series stacked on the first axis.
        y_pred: scores `[G, ..., C]` (argmax is taken) or int class ids of `y_true`'s shape.
        num_classes: int. Defaults to 3.
        sample_weight: `[G, ...]` frame mask (1 = valid frame) or None.

    Returns:
        float64 tensor `[G, C, C]`.
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == len(y_true.shape) + 1:
        y_pred = ops.argmax(y_pred, axis=-1)
    rows = ops.shape(y_true)[0]
    labels = ops.reshape(ops.cast(y_true, "int32"), (rows, -1))
    predicted = ops.reshape(ops.cast(y_pred, "int32"), (rows, -1))
    true_1h = ops.one_hot(labels, num_classes, dtype="float64")
    pred_1h = ops.one_hot(predicted, num_classes, dtype="float64")
    if sample_weight is not None:
        w = ops.reshape(ops.broadcast_to(ops.cast(sample_weight, "float64"), ops.shape(y_true)), (rows, -1, 1))
        true_1h = true_1h * w
    return ops.matmul(ops.transpose(true_1h, (0, 2, 1)), pred_1h)


@keras.saving.register_keras_serializable(package="cold_keras")
class StreamingMacroF1(keras.metrics.Metric):
    """Macro F1 over all frames seen since the last reset, from an accumulated confusion matrix.

    Equals `precision_recall_f1(...)[2]` on the concatenated valid frames; `precision_recall_f1()`
    (the method) gives all three. With `model.compile`, list it under `weighted_metrics` so that Keras
    passes the frame mask as `sample_weight`. The confusion matrix is a float64 `[C, C]` variable (rows true class,
    columns predicted class), so the counts are exact far beyond float32's 2^24.

    Args:
        num_classes: int >= 2. Defaults to 3.
        name: str. Defaults to "f1_macro".
        dtype: dtype of the result. Defaults to None (float32).

    Call arguments (`update_state`):
        y_true: int `[B, T]` class ids. Ids outside [0, C) (e.g. padding) are not counted.
        y_pred: logits or probabilities `[B, T, C]` (argmax is taken), or int class ids `[B, T]`: the
            rank relative to `y_true` decides.
        sample_weight: frame mask `[B, T]` (1 = valid frame) or None.

    >>> m = StreamingMacroF1(num_classes=3)
    >>> m.update_state([0, 1, 2, 2], [0, 1, 2, 1])
    >>> round(float(m.result()), 4)
    0.7778
    """

    def __init__(self, num_classes=3, name="f1_macro", dtype=None):
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.confusion = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float64", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_pred.shape) == len(y_true.shape) + 1:
            y_pred = ops.argmax(y_pred, axis=-1)
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        predicted = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
        # one_hot of an id outside [0, C) is an all-zero row, so padding labels drop out.
        true_1h = ops.one_hot(labels, self.num_classes, dtype="float64")
        pred_1h = ops.one_hot(predicted, self.num_classes, dtype="float64")
        if sample_weight is not None:
            w = ops.reshape(ops.broadcast_to(ops.cast(sample_weight, "float64"), ops.shape(y_true)), (-1, 1))
            true_1h = true_1h * w
        self.confusion.assign_add(ops.matmul(ops.transpose(true_1h), pred_1h))

    def add_confusion(self, confusion):
        """Adds a precomputed `[C, C]` confusion matrix, e.g. one row of `confusion_matrices`."""
        self.confusion.assign_add(ops.cast(confusion, "float64"))

    def _scores(self):
        tp = ops.diagonal(self.confusion)
        support = ops.sum(self.confusion, axis=1)
        predicted = ops.sum(self.confusion, axis=0)
        present = ops.cast((support + predicted) > 0, "float64")
        num_present = ops.sum(present)
        precision = ops.divide_no_nan(tp, predicted)
        recall = ops.divide_no_nan(tp, support)
        f1 = ops.divide_no_nan(2.0 * tp, support + predicted)

        def macro(values):
            value = ops.where(num_present > 0, ops.divide_no_nan(ops.sum(values * present), num_present), np.nan)
            return ops.cast(value, self.dtype)

        return macro(precision), macro(recall), macro(f1)

    def result(self):
        return self._scores()[2]

    def precision_recall_f1(self):
        """Macro `(precision, recall, f1)` of the accumulated frames, as scalars of the metric's dtype."""
        return self._scores()

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


# ----------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------

ReliabilityBins = collections.namedtuple("ReliabilityBins", ["confidence", "accuracy", "count"])


def softmax(logits):
    """Softmax over the last axis in float64 (NumPy), stable for large logits.

    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _top_label(probs, labels):
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim < 2 or probs.shape[:-1] != labels.shape:
        raise ValueError(f"probs must be [..., C] with the leading shape of labels {labels.shape}, got {probs.shape}.")
    probs = probs.reshape(-1, probs.shape[-1])
    labels = labels.reshape(-1)
    if labels.size == 0:
        raise ValueError("calibration error of an empty set of predictions is undefined.")
    confidence = probs.max(axis=-1)
    correct = (np.argmax(probs, axis=-1) == labels).astype(np.float64)
    return confidence, correct


def _bin_index(confidence, num_bins):
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}.")
    return np.clip(np.floor(confidence * num_bins).astype(np.int64), 0, num_bins - 1)


def reliability_bins(probs, labels, num_bins=10):
    """Per-bin mean confidence, accuracy and count of the top-label predictions (reliability diagram).

    Confidence = max_c p_c, prediction = argmax_c p_c. Bins are equal-width on [0, 1]: bin b holds
    confidences in [b/M, (b+1)/M), the last bin also 1.0 (as `tf.histogram_fixed_width_bins`, which
    `tfp.stats.expected_calibration_error` uses).

    Args:
        probs: array-like `[..., C]` of class probabilities.
        labels: int array-like with the leading shape of `probs`. True class ids.
        num_bins: int. Defaults to 10.

    Returns:
        `ReliabilityBins(confidence, accuracy, count)`, arrays `[num_bins]`; confidence and accuracy are
        NaN in empty bins.
    """
    confidence, correct = _top_label(probs, labels)
    bins = _bin_index(confidence, num_bins)
    count = np.bincount(bins, minlength=num_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=num_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=num_bins) / count
    return ReliabilityBins(mean_confidence, accuracy, count)


def expected_calibration_error(probs, labels, num_bins=10):
    """Top-label expected calibration error with equal-width bins (Guo et al. 2017).

        ECE = sum_b (n_b / N) |acc_b - conf_b|

    over the bins of `reliability_bins` (empty bins contribute nothing).

    Args:
        probs: array-like `[..., C]` of class probabilities (apply a softmax to logits first).
        labels: int array-like with the leading shape of `probs`.
        num_bins: int. Defaults to 10.

    Returns:
        float in [0, 1].

    >>> expected_calibration_error([[0.9, 0.1], [0.9, 0.1]], [0, 1], num_bins=10)
    0.4
    """
    bins = reliability_bins(probs, labels, num_bins)
    filled = bins.count > 0
    weights = bins.count[filled] / bins.count.sum()
    return float(np.sum(weights * np.abs(bins.accuracy[filled] - bins.confidence[filled])))


def apply_temperature(logits, temperature):
    """Temperature-scaled logits z / T (softmax them for calibrated probabilities).

    Args:
        logits: array-like `[..., C]`.
        temperature: float > 0.

    Returns:
        float64 array of the shape of `logits`.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    return np.asarray(logits, dtype=np.float64) / temperature


def temperature_scale(logits_val, labels_val, *, num_draws=100, low=1e-2, high=1e3, seed=0):
    """Temperature with the lowest validation ECE among T = 1 and `num_draws` log-uniform draws.

    Candidates: T = 1 (no scaling, listed first so that it wins ties) and T = exp(u),
    u ~ Uniform(log low, log high), drawn with `numpy.random.default_rng(seed)`. Each candidate is scored
    by `expected_calibration_error(softmax(logits_val / T), labels_val)` (10 bins); the first candidate
    with the lowest ECE is returned, so the validation ECE never gets worse than without scaling.
    Dividing logits by T > 0 does not change the argmax, so accuracy and F1 are unchanged.

    Args:
        logits_val: array-like `[..., C]`. Validation logits.
        labels_val: int array-like with the leading shape of `logits_val`.
        num_draws: int >= 0. Number of random candidates. Defaults to 100.
        low: float > 0. Smallest temperature drawn. Defaults to 1e-2.
        high: float > low. Largest temperature drawn. Defaults to 1e3.
        seed: int. Seed of the draws. Defaults to 0.

    Returns:
        float, the selected temperature.
    """
    if not 0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low!r}, high={high!r}.")
    if not isinstance(num_draws, (int, np.integer)) or num_draws < 0:
        raise ValueError(f"num_draws must be a non-negative int, got {num_draws!r}.")
    rng = np.random.default_rng(seed)
    draws = np.exp(rng.uniform(np.log(low), np.log(high), size=num_draws))
    candidates = np.concatenate([[1.0], draws])
    errors = [expected_calibration_error(softmax(apply_temperature(logits_val, t)), labels_val) for t in candidates]
    return float(candidates[int(np.argmin(errors))])
