"""Regression uncertainty: scores of a per-frame predictive std in label units (NumPy).

Interval figures (`gaussian_nll`, `interval_coverage`, `calibration_curve`, `miscalibration_area`,
`expected_normalized_calibration_error`) score the std itself; ranking figures
(`sparsification_curve`, `ause`, `reject_option_ccc`) score how well any uncertainty ranks the frames
by their error.
"""

import numpy as np

from cold_keras.metrics.regression import ccc

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
