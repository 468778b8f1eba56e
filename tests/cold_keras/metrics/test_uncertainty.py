"""Regression uncertainty metrics of cold_keras.metrics.uncertainty against independent references (SciPy's
normal distribution, explicit loops written from the definitions)."""

import doctest

import numpy as np
import pytest
from scipy import integrate, stats

from cold_keras import metrics


def _data(n=500, seed=0, scale_error=1.0):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-1, 1, n)
    std = rng.uniform(0.05, 0.5, n)
    y = mu + scale_error * std * rng.standard_normal(n)
    return y, mu, std


def _ccc_ref(x, y):
    # AVEC 2019's calc_scores.py: the covariance divided by n, the variances by n - 1.
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (np.var(x, ddof=1) + np.var(y, ddof=1) + (x.mean() - y.mean()) ** 2)


def test_doctests_of_the_uncertainty_metrics():
    names = (
        "gaussian_nll",
        "interval_coverage",
        "calibration_curve",
        "miscalibration_area",
        "expected_normalized_calibration_error",
        "sparsification_curve",
        "ause",
        "reject_option_ccc",
    )
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    attempted = 0
    for name in names:
        for test in finder.find(getattr(metrics, name), name, globs=vars(metrics).copy()):
            result = runner.run(test)
            assert result.failed == 0, name
            attempted += result.attempted
    assert attempted >= len(names)


def test_gaussian_nll_matches_scipy_logpdf():
    y, mu, std = _data()
    expected = -np.mean(stats.norm.logpdf(y, loc=mu, scale=std))
    assert metrics.gaussian_nll(y, mu, std) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("level", metrics.INTERVAL_LEVELS)
def test_interval_coverage_matches_scipy_interval(level):
    y, mu, std = _data(scale_error=1.3)
    low, high = stats.norm.interval(level, loc=mu, scale=std)
    picp, width = metrics.interval_coverage(y, mu, std, level)
    assert picp == pytest.approx(np.mean((y >= low) & (y <= high)))
    assert width == pytest.approx(np.mean(high - low), rel=1e-10)


def test_interval_coverage_of_a_calibrated_model_is_nominal():
    y, mu, std = _data(n=20000, seed=1)
    for level in metrics.INTERVAL_LEVELS:
        assert metrics.interval_coverage(y, mu, std, level)[0] == pytest.approx(level, abs=0.01)


def test_calibration_curve_matches_the_cdf_formulation():
    y, mu, std = _data(scale_error=0.7)
    expected, observed = metrics.calibration_curve(y, mu, std, num_levels=19)
    # Central-interval membership through the CDF: |2 Phi(r) - 1| <= p.
    mass = np.abs(2 * stats.norm.cdf((y - mu) / std) - 1)
    reference = np.array([np.mean(mass <= p) for p in np.arange(1, 20) / 20])
    np.testing.assert_allclose(expected, np.arange(1, 20) / 20)
    np.testing.assert_allclose(observed, reference)


def test_miscalibration_area_matches_the_analytic_integral_for_a_scaled_std():
    # Errors N(0, s^2) but a claimed std of 2 s: observed(p) = 2 Phi(2 Phi^-1((1 + p) / 2)) - 1.
    y, mu, std = _data(n=40000, seed=2)
    area = metrics.miscalibration_area(y, mu, 2 * std, num_levels=199)

    def gap(p):
        return abs(2 * stats.norm.cdf(2 * stats.norm.ppf((1 + p) / 2)) - 1 - p)

    assert area == pytest.approx(integrate.quad(gap, 0, 1)[0], abs=0.005)
    assert metrics.miscalibration_area(y, mu, std, num_levels=199) < 0.01


def test_ence_matches_an_explicit_binning_loop():
    y, mu, std = _data(n=103, scale_error=1.5)
    pairs = sorted(range(103), key=lambda i: (std[i], i))
    sizes = [103 // 10 + (1 if b < 103 % 10 else 0) for b in range(10)]
    terms, start = [], 0
    for size in sizes:
        index = pairs[start : start + size]
        start += size
        rmv = np.sqrt(sum(std[i] ** 2 for i in index) / size)
        rmse = np.sqrt(sum((y[i] - mu[i]) ** 2 for i in index) / size)
        terms.append(abs(rmv - rmse) / rmv)
    assert metrics.expected_normalized_calibration_error(y, mu, std, 10) == pytest.approx(np.mean(terms))


def _sparsification_reference(y, mu, u, steps):
    n = y.size
    residual = np.abs(y - mu)
    model, oracle = [], []
    for k in range(steps):
        drop = int(round(k / steps * n))
        keep_model = sorted(range(n), key=lambda i: (-u[i], i))[drop:]
        keep_oracle = sorted(range(n), key=lambda i: (-residual[i], i))[drop:]
        model.append(np.sqrt(np.mean(residual[keep_model] ** 2)))
        oracle.append(np.sqrt(np.mean(residual[keep_oracle] ** 2)))
    return np.array(model), np.array(oracle)


def test_sparsification_and_ause_match_a_reference_loop():
    y, mu, std = _data(n=211, seed=3)
    noisy = std * np.exp(0.5 * np.random.default_rng(4).standard_normal(211))
    fractions, model, oracle = metrics.sparsification_curve(y, mu, noisy, num_steps=10)
    ref_model, ref_oracle = _sparsification_reference(y, mu, noisy, 10)
    np.testing.assert_allclose(fractions, np.arange(10) / 10)
    np.testing.assert_allclose(model, ref_model)
    np.testing.assert_allclose(oracle, ref_oracle)
    assert metrics.ause(y, mu, noisy, num_steps=10) == pytest.approx(np.mean(ref_model - ref_oracle))
    # The oracle's own ranking has zero AUSE; an informative ranking beats a reversed one.
    assert metrics.ause(y, mu, np.abs(y - mu), num_steps=10) == pytest.approx(0.0, abs=1e-12)
    assert metrics.ause(y, mu, noisy, num_steps=10) < metrics.ause(y, mu, -noisy, num_steps=10)


def test_reject_option_ccc_matches_a_reference_loop():
    y, mu, std = _data(n=300, seed=5)
    fractions, values = metrics.reject_option_ccc(y, mu, std)
    expected = []
    for f in metrics.REJECT_FRACTIONS:
        keep = sorted(range(300), key=lambda i: (-std[i], i))[int(round(f * 300)) :]
        expected.append(_ccc_ref(y[keep], mu[keep]))
    np.testing.assert_allclose(fractions, metrics.REJECT_FRACTIONS)
    np.testing.assert_allclose(values, expected, rtol=1e-10)


def test_uncertainty_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="positive"):
        metrics.gaussian_nll([0.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="same size"):
        metrics.interval_coverage([0.0, 1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        metrics.interval_coverage([0.0], [0.0], [1.0], level=1.0)
    with pytest.raises(ValueError, match="fractions"):
        metrics.reject_option_ccc([0.0, 1.0], [0.0, 1.0], [0.0, 1.0], fractions=(1.0,))
