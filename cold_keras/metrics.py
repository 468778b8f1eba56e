"""Evaluation metrics: concordance, macro precision/recall/F1, calibration error and temperature scaling.

Two kinds live here:

* NumPy functions (`ccc`, `precision_recall_f1`, `expected_calibration_error`, `reliability_bins`,
  `temperature_scale`, `apply_temperature`) for scoring whole partitions after prediction;
* streaming Keras metrics (`StreamingCCC`, `StreamingMacroF1`) that accumulate sufficient statistics over
  an epoch, so the logged value equals the NumPy function on all the epoch's valid frames concatenated.

CCC follows AVEC 2019's partition-level scoring (all recordings of a partition concatenated) and its
`calc_scores.py` to the last digit: covariance divided by n, variances by n - 1. `ccc_unbiased` (ddof=1
for all three moments) stays available by name.
"""

import collections

import keras
import numpy as np
from keras import ops

# ----------------------------------------------------------------------------------------------------
# Concordance correlation coefficient
# ----------------------------------------------------------------------------------------------------


def _paired(x, y, ignore_nan):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"ccc needs two sequences of the same length, got {x.size} and {y.size}.")
    if ignore_nan:
        keep = ~(np.isnan(x) | np.isnan(y))
        x, y = x[keep], y[keep]
    return x, y


def ccc(x, y, *, ignore_nan=False):
    """Concordance correlation coefficient as AVEC 2019's `calc_scores.py` computes it (NumPy, float64).

        CCC = 2 cov / (var_x + var_y + (mean_x - mean_y)^2)

    with, exactly as the official script writes them,

        mean_x = nanmean(x),  mean_y = nanmean(y)
        cov    = nanmean((x - mean_x) (y - mean_y))          (divisor n: the pairs without a NaN)
        var_x  = nansum((x - mean_x)^2) / (len(x) - 1)       (divisor len - 1, as Matlab's nanvar)

    so on series without NaN the covariance is divided by n and the variances by n - 1. This is the
    partition-level score of the trainer, the evaluator, `metrics.json` and the prediction scoring:
    pass the frames of all recordings of a partition concatenated. `ccc_unbiased` is the variant with
    every moment divided by n - 1 (larger by a factor n / (n - 1)).

    Edge cases:

    * fewer than two samples: NaN;
    * one side constant: cov = 0, so 0 as long as the denominator is positive;
    * both sides constant and equal: 0 / 0, NaN;
    * NaN in either input: handled as the official script does (each mean over its own non-NaN values,
      the covariance over the pairs without a NaN, the variances divided by the full length - 1);
      `ignore_nan=True` drops every pair with a NaN on either side first instead.

    Args:
        x: array-like. Values (e.g. gold standard); flattened.
        y: array-like of the same size. Values (e.g. predictions); flattened.
        ignore_nan: bool. Drop the pairs with a NaN before scoring. Defaults to False.

    Returns:
        float.

    Raises:
        ValueError: if `x` and `y` have different sizes.

    >>> round(ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), 4)  # (n - 1) / n for identical series
    0.6667
    """
    x, y = _paired(x, y, ignore_nan)
    n = x.size
    if n < 2 or np.isnan(x).all() or np.isnan(y).all():
        return float("nan")
    mean_x, mean_y = np.nanmean(x), np.nanmean(y)
    products = (x - mean_x) * (y - mean_y)
    if np.isnan(products).all():
        return float("nan")
    cov = np.nanmean(products)
    var_x = np.nansum((x - mean_x) ** 2) / (n - 1)
    var_y = np.nansum((y - mean_y) ** 2) / (n - 1)
    denominator = var_x + var_y + (mean_x - mean_y) ** 2
    if denominator == 0:
        return float("nan")
    return float(2.0 * cov / denominator)


def ccc_unbiased(x, y, *, ignore_nan=False):
    """CCC with sample variances and covariance all divided by n - 1 (ddof=1).

        CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)

    Equals `ccc` (AVEC's definition) times n / (n - 1) on series without NaN. NaN with fewer than two
    samples, when both sides are the same constant, or with a NaN in either input unless
    `ignore_nan=True`, which drops every pair with a NaN on either side first.

    >>> ccc_unbiased([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    1.0
    """
    x, y = _paired(x, y, ignore_nan)
    n = x.size
    if n < 2:
        return float("nan")
    mean_x, mean_y = x.mean(), y.mean()
    dx, dy = x - mean_x, y - mean_y
    var_x = np.dot(dx, dx) / (n - 1)
    var_y = np.dot(dy, dy) / (n - 1)
    cov = np.dot(dx, dy) / (n - 1)
    denominator = var_x + var_y + (mean_x - mean_y) ** 2
    if denominator == 0:
        return float("nan")
    return float(2.0 * cov / denominator)


# Partition-level CCC definitions by name: `avec` (the official scripts', the default) and `unbiased`.
CCC_DEFINITIONS = {"avec": ccc, "unbiased": ccc_unbiased}


def ccc_by_name(definition="avec"):
    """The CCC function called `definition` in `CCC_DEFINITIONS` (`avec` or `unbiased`)."""
    if definition not in CCC_DEFINITIONS:
        raise ValueError(f"unknown CCC definition {definition!r}; choose one of {', '.join(CCC_DEFINITIONS)}.")
    return CCC_DEFINITIONS[definition]


def _rows64(x):
    """`x` `[G, ...]` as float64 `[G, N]`."""
    x = ops.cast(x, "float64")
    return ops.reshape(x, (ops.shape(x)[0], -1))


def ccc_statistics(y_true, y_pred, sample_weight=None):
    """`StreamingCCC`'s sufficient statistics of G series at once, in one computation.

    Row g holds (n, sum x, sum y, sum x^2, sum y^2, sum x y) of series g, weighted by its
    `sample_weight` row, exactly the sums `StreamingCCC.update_state(y_true[g], y_pred[g],
    sample_weight[g])` adds (padded frames, NaN included, drop out); feed them to the metrics with
    `StreamingCCC.add_statistics`. A loss layer scoring several branches and dimensions computes its
    metrics' updates with one graph instead of one per metric.

    Args:
        y_true: `[G, ...]` gold standard, G series stacked on the first axis.
        y_pred: same shape, predictions.
        sample_weight: same shape (1 = valid frame) or None.

    Returns:
        float64 tensor `[G, 6]`.
    """
    x = _rows64(y_true)
    y = _rows64(y_pred)
    if sample_weight is None:
        w = ops.ones_like(x)
    else:
        w = _rows64(ops.broadcast_to(ops.cast(sample_weight, "float64"), ops.shape(y_true)))
    valid = w > 0
    x = ops.where(valid, x, 0.0)
    y = ops.where(valid, y, 0.0)
    return ops.sum(ops.stack([w, w * x, w * y, w * x * x, w * y * y, w * x * y], axis=1), axis=2)


@keras.saving.register_keras_serializable(package="cold_keras")
class StreamingCCC(keras.metrics.Metric):
    """CCC of all frames seen since the last reset, identical to `ccc` on the concatenated valid frames.

    Accumulates the weighted sufficient statistics n = sum w, sum w x, sum w y, sum w x^2, sum w y^2 and
    sum w x y in float64 variables (float64 is supported on CPU and GPU; the statistics are sums, so they
    also add up correctly across replicas under `tf.distribute`). With S_ab = sum w a b - (sum w a)(sum w b) / n
    the result is AVEC's definition (covariance / n, variances / (n - 1)), the one `ccc` computes:

        CCC = 2 (S_xy / n) / ((S_xx + S_yy) / (n - 1) + (mean_x - mean_y)^2)

    or, with `definition="unbiased"`, `ccc_unbiased` (covariance / (n - 1) too). NaN before any update,
    with fewer than two valid frames, or when both sides are the same constant. A NaN in a valid frame
    makes the result NaN (the NumPy `ccc` instead skips it as AVEC's script does).

    With `model.compile`, list it under `weighted_metrics`: Keras passes `sample_weight` (the frame mask)
    only to those, never to `metrics`.

    Args:
        name: str. Defaults to "ccc".
        dtype: dtype of the result. Defaults to None (float32).
        definition: str. `avec` (default) or `unbiased` (see `CCC_DEFINITIONS`).

    Call arguments (`update_state`):
        y_true: `[B, T]` (any shape) gold standard.
        y_pred: same shape, predictions.
        sample_weight: frame mask of the same shape (1 = valid frame) or None.

    >>> m = StreamingCCC(definition="unbiased")
    >>> m.update_state([[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]])
    >>> float(m.result())
    1.0
    """

    _STATS = ("n", "sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")

    def __init__(self, name="ccc", dtype=None, definition="avec"):
        ccc_by_name(definition)
        super().__init__(name=name, dtype=dtype)
        self.definition = definition
        for stat in self._STATS:
            setattr(self, stat, self.add_variable(shape=(), initializer="zeros", dtype="float64", name=stat))

    def update_state(self, y_true, y_pred, sample_weight=None):
        x = ops.reshape(ops.cast(y_true, "float64"), (-1,))
        y = ops.reshape(ops.cast(y_pred, "float64"), (-1,))
        if sample_weight is None:
            w = ops.ones_like(x)
        else:
            w = ops.reshape(ops.broadcast_to(ops.cast(sample_weight, "float64"), ops.shape(y_true)), (-1,))
        # A padded frame may hold anything, NaN included; 0 * NaN would still be NaN.
        valid = w > 0
        x = ops.where(valid, x, 0.0)
        y = ops.where(valid, y, 0.0)
        updates = (w, w * x, w * y, w * x * x, w * y * y, w * x * y)
        for stat, value in zip(self._STATS, updates):
            getattr(self, stat).assign_add(ops.sum(value))

    def add_statistics(self, statistics):
        """Adds precomputed sums (n, sum x, sum y, sum x^2, sum y^2, sum x y): a float64 `[6]` tensor or
        six scalars, e.g. one row of `ccc_statistics`. Equivalent to the `update_state` call they come from."""
        if not isinstance(statistics, (list, tuple)):
            statistics = ops.unstack(ops.reshape(statistics, (len(self._STATS),)))
        if len(statistics) != len(self._STATS):
            raise ValueError(f"StreamingCCC needs {len(self._STATS)} statistics {self._STATS}, got {len(statistics)}.")
        for stat, value in zip(self._STATS, statistics):
            getattr(self, stat).assign_add(ops.cast(value, "float64"))

    def result(self):
        # Each variable read once (a traced step computes every metric's result at every step).
        n, sum_x, sum_y, sum_xx, sum_yy, sum_xy = (ops.convert_to_tensor(getattr(self, s)) for s in self._STATS)
        mean_x = sum_x / n
        mean_y = sum_y / n
        s_xx = sum_xx - sum_x * mean_x
        s_yy = sum_yy - sum_y * mean_y
        s_xy = sum_xy - sum_x * mean_y
        n_minus_1 = n - 1.0
        denominator = s_xx + s_yy + n_minus_1 * ops.square(mean_x - mean_y)
        if self.definition == "avec":
            s_xy = s_xy * n_minus_1 / ops.where(n > 0.0, n, 1.0)
        positive = denominator > 0.0
        value = ops.where(
            ops.logical_and(n >= 2.0, positive),
            2.0 * s_xy / ops.where(positive, denominator, 1.0),
            np.nan,
        )
        return ops.cast(value, self.dtype)

    def get_config(self):
        return {**super().get_config(), "definition": self.definition}


# ----------------------------------------------------------------------------------------------------
# Classification: macro precision, recall, F1
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


# ----------------------------------------------------------------------------------------------------
# Regression uncertainty: per-frame predictive std in label units
# ----------------------------------------------------------------------------------------------------

INTERVAL_LEVELS = (0.5, 0.9, 0.95)
REJECT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _regression_triplet(y_true, y_pred, std):
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    mu = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    s = np.asarray(std, dtype=np.float64).reshape(-1)
    if not y.size == mu.size == s.size:
        raise ValueError(f"y_true, y_pred and std need the same size, got {y.size}, {mu.size} and {s.size}.")
    if y.size == 0:
        raise ValueError("uncertainty metrics of an empty set of predictions are undefined.")
    if not np.all(s > 0):
        raise ValueError(f"std must be positive everywhere, got a minimum of {s.min()!r}.")
    return y, mu, s


def _normal_quantile(p):
    from statistics import NormalDist

    return NormalDist().inv_cdf(float(p))


def gaussian_nll(y_true, y_pred, std):
    """Mean Gaussian negative log-likelihood of the targets under N(y_pred, std^2), in nats.

        NLL = 1/N sum_i [ 0.5 log(2 pi s_i^2) + (y_i - mu_i)^2 / (2 s_i^2) ]

    Args:
        y_true: array-like. Targets; flattened.
        y_pred: array-like of the same size. Predicted means.
        std: array-like of the same size, > 0. Predicted standard deviations (label units).

    Returns:
        float.

    >>> round(gaussian_nll([0.0], [0.0], [1.0]), 6)
    0.918939
    """
    y, mu, s = _regression_triplet(y_true, y_pred, std)
    return float(np.mean(0.5 * np.log(2.0 * np.pi * s**2) + (y - mu) ** 2 / (2.0 * s**2)))


def interval_coverage(y_true, y_pred, std, level=0.9):
    """Prediction-interval coverage probability (PICP) and mean width of central Gaussian intervals.

        z = Phi^-1((1 + level) / 2),   interval_i = [mu_i - z s_i, mu_i + z s_i]
        PICP = 1/N sum_i 1[|y_i - mu_i| <= z s_i],   width = 1/N sum_i 2 z s_i

    A calibrated model has PICP close to `level`; among calibrated models, narrower is better.

    Args:
        y_true, y_pred, std: array-likes of the same size (std > 0).
        level: float in (0, 1). Nominal coverage. Defaults to 0.9.

    Returns:
        tuple of floats `(picp, mean_width)`.

    >>> picp, width = interval_coverage([0.0, 0.0, 2.0, 0.5], [0.0] * 4, [1.0] * 4, level=0.9)
    >>> picp, round(width, 4)
    (0.75, 3.2897)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}.")
    y, mu, s = _regression_triplet(y_true, y_pred, std)
    z = _normal_quantile((1.0 + level) / 2.0)
    covered = np.abs(y - mu) <= z * s
    return float(covered.mean()), float(np.mean(2.0 * z * s))


def calibration_curve(y_true, y_pred, std, num_levels=99):
    """Observed vs expected coverage of central Gaussian intervals (regression calibration curve).

    For expected proportions p_k = k / (num_levels + 1), k = 1..num_levels, the observed proportion is
    the PICP of the central p_k interval (`interval_coverage`); a calibrated model follows the diagonal.

    Args:
        y_true, y_pred, std: array-likes of the same size (std > 0).
        num_levels: int >= 1. Defaults to 99 (p = 0.01, ..., 0.99).

    Returns:
        tuple of float64 arrays `(expected, observed)`, each `[num_levels]`.

    >>> expected, observed = calibration_curve([0.0, 1.0], [0.0, 0.0], [1.0, 1.0], num_levels=1)
    >>> expected.tolist(), observed.tolist()
    ([0.5], [0.5])
    """
    if not isinstance(num_levels, (int, np.integer)) or num_levels < 1:
        raise ValueError(f"num_levels must be a positive int, got {num_levels!r}.")
    y, mu, s = _regression_triplet(y_true, y_pred, std)
    expected = np.arange(1, num_levels + 1, dtype=np.float64) / (num_levels + 1)
    z = np.array([_normal_quantile((1.0 + p) / 2.0) for p in expected])
    ratio = np.abs(y - mu) / s
    observed = np.mean(ratio[None, :] <= z[:, None], axis=1)
    return expected, observed


def miscalibration_area(y_true, y_pred, std, num_levels=99):
    """Area between the calibration curve and the diagonal.

        MA = integral_0^1 |observed(p) - p| dp

    by the trapezoid rule over p = 0, p_1, ..., p_K, 1 of `calibration_curve` (observed(0) = 0 and
    observed(1) = 1 by definition). 0 for perfect calibration, at most 0.5.

    Args:
        y_true, y_pred, std: array-likes of the same size (std > 0).
        num_levels: int. Defaults to 99.

    Returns:
        float in [0, 0.5].

    >>> round(miscalibration_area([0.0, 0.0], [0.0, 0.0], [1.0, 1.0], num_levels=3), 4)
    0.375
    """
    expected, observed = calibration_curve(y_true, y_pred, std, num_levels)
    p = np.concatenate([[0.0], expected, [1.0]])
    gap = np.abs(np.concatenate([[0.0], observed, [1.0]]) - p)
    return float(np.sum((gap[1:] + gap[:-1]) * np.diff(p)) / 2.0)


def expected_normalized_calibration_error(y_true, y_pred, std, num_bins=10):
    """ENCE (Levi et al. 2019): binned RMSE against the binned root mean variance, relative.

    Frames sorted by std (stable sort) are split into `num_bins` bins of (near) equal count
    (`numpy.array_split`); per bin j

        RMV_j = sqrt(mean_j s_i^2),   RMSE_j = sqrt(mean_j (y_i - mu_i)^2)
        ENCE = 1/B sum_j |RMV_j - RMSE_j| / RMV_j

    over the non-empty bins. 0 when every bin's error matches its predicted spread.

    Args:
        y_true, y_pred, std: array-likes of the same size (std > 0).
        num_bins: int >= 1. Defaults to 10.

    Returns:
        float >= 0.

    >>> expected_normalized_calibration_error([1.0, -1.0, 2.0, -2.0], [0.0] * 4, [1.0, 1.0, 2.0, 2.0], num_bins=2)
    0.0
    """
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}.")
    y, mu, s = _regression_triplet(y_true, y_pred, std)
    order = np.argsort(s, kind="stable")
    terms = []
    for index in np.array_split(order, num_bins):
        if index.size == 0:
            continue
        rmv = np.sqrt(np.mean(s[index] ** 2))
        rmse = np.sqrt(np.mean((y[index] - mu[index]) ** 2))
        terms.append(abs(rmv - rmse) / rmv)
    return float(np.mean(terms))


def _kept_after_removing(order, fraction):
    # The frames left when the first round(fraction * N) of `order` are removed.
    n = order.size
    return order[int(round(fraction * n)) :]


def sparsification_curve(y_true, y_pred, uncertainty, num_steps=20, error="rmse"):
    """Error of the kept frames as the most uncertain frames are removed, and the oracle's curve.

    For removed fractions f_k = k / num_steps, k = 0..num_steps - 1: drop the round(f_k N) frames with
    the largest `uncertainty` (stable sort: ties keep their order, so a constant uncertainty removes
    frames in their given order) and score the rest by RMSE (or MAE); the oracle drops the frames with
    the largest absolute error instead (the best any ranking can do).

    Args:
        y_true, y_pred: array-likes of the same size.
        uncertainty: array-like of the same size; larger means less reliable (a std, or any score).
        num_steps: int >= 1. Defaults to 20 (0%, 5%, ..., 95% removed).
        error: "rmse" or "mae". Defaults to "rmse".

    Returns:
        tuple of float64 arrays `(fractions_removed, model_error, oracle_error)`, each `[num_steps]`.

    >>> f, model, oracle = sparsification_curve([0.0, 0.0], [1.0, 3.0], [2.0, 1.0], num_steps=2, error="mae")
    >>> f.tolist(), model.tolist(), oracle.tolist()
    ([0.0, 0.5], [2.0, 3.0], [2.0, 1.0])
    """
    if error not in ("rmse", "mae"):
        raise ValueError(f"error must be 'rmse' or 'mae', got {error!r}.")
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}.")
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    mu = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    if not y.size == mu.size == u.size or y.size == 0:
        raise ValueError(
            f"y_true, y_pred and uncertainty need the same non-zero size, got {y.size}, {mu.size}, {u.size}."
        )
    residual = np.abs(y - mu)

    def score(kept):
        values = residual[kept]
        return float(np.sqrt(np.mean(values**2))) if error == "rmse" else float(np.mean(values))

    by_uncertainty = np.argsort(-u, kind="stable")
    by_error = np.argsort(-residual, kind="stable")
    fractions = np.arange(num_steps, dtype=np.float64) / num_steps
    model = np.array([score(_kept_after_removing(by_uncertainty, f)) for f in fractions])
    oracle = np.array([score(_kept_after_removing(by_error, f)) for f in fractions])
    return fractions, model, oracle


def ause(y_true, y_pred, uncertainty, num_steps=20, error="rmse"):
    """Area under the sparsification error: the model's sparsification curve minus the oracle's.

        AUSE = sum_k (model_k - oracle_k) / num_steps

    over the `num_steps` points of `sparsification_curve` (a left Riemann sum over the removed fraction
    in [0, 1)). 0 when the uncertainty ranks frames exactly as their errors; in the error's units.

    Args:
        y_true, y_pred, uncertainty: array-likes of the same size.
        num_steps: int. Defaults to 20.
        error: "rmse" or "mae". Defaults to "rmse".

    Returns:
        float >= 0.

    >>> ause([0.0, 0.0], [1.0, 3.0], [2.0, 1.0], num_steps=2, error="mae")
    1.0
    """
    _, model, oracle = sparsification_curve(y_true, y_pred, uncertainty, num_steps, error)
    return float(np.mean(model - oracle))


def reject_option_ccc(y_true, y_pred, uncertainty, fractions=REJECT_FRACTIONS):
    """CCC of the frames kept when the most uncertain fraction is rejected (reject-option curve).

    For each rejected fraction f: drop the round(f N) frames with the largest `uncertainty` (stable
    sort) and compute `ccc(y_true, y_pred)` on the rest. A useful uncertainty makes the curve rise.

    Args:
        y_true, y_pred, uncertainty: array-likes of the same size.
        fractions: iterable of floats in [0, 1). Defaults to 0.1, ..., 0.9.

    Returns:
        tuple of float64 arrays `(fractions_rejected, ccc_kept)`.

    >>> f, c = reject_option_ccc([0.0, 1.0, 2.0, 5.0], [0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0], fractions=(0.25,))
    >>> f.tolist(), c.tolist()  # AVEC's CCC of 3 exact frames: covariance / n over variances / (n - 1)
    ([0.25], [0.6666666666666666])
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    mu = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    if not y.size == mu.size == u.size or y.size == 0:
        raise ValueError(
            f"y_true, y_pred and uncertainty need the same non-zero size, got {y.size}, {mu.size}, {u.size}."
        )
    fractions = np.asarray(list(fractions), dtype=np.float64)
    if np.any(fractions < 0) or np.any(fractions >= 1):
        raise ValueError(f"fractions must lie in [0, 1), got {fractions.tolist()}.")
    order = np.argsort(-u, kind="stable")
    values = [ccc(y[kept], mu[kept]) for kept in (_kept_after_removing(order, f) for f in fractions)]
    return fractions, np.array(values, dtype=np.float64)
