"""Concordance correlation coefficient: the NumPy scores and the streaming Keras metric.

CCC follows AVEC 2019's partition-level scoring (all recordings of a partition concatenated) and its
`calc_scores.py` to the last digit: covariance divided by n, variances by n - 1. `ccc_unbiased` (ddof=1
for all three moments) stays available by name. `StreamingCCC` accumulates sufficient statistics over
an epoch, so the logged value equals `ccc` on all the epoch's valid frames concatenated.
"""

import keras
import numpy as np
from keras import ops


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
