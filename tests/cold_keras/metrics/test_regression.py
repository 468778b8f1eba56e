"""Tests of cold_keras.metrics.regression (CCC, StreamingCCC) against AVEC's formula and NumPy references."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from cold_keras import metrics
from cold_keras.losses import ConcordanceLoss
from tests.cold_keras.metrics.references import (
    avec_calc_scores_ccc,
    np_ccc_ddof1,
    np_macro_prf,
    right_padded_mask,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------------
# ccc
# ---------------------------------------------------------------------------------------------------


def test_ccc_matches_avec_calc_scores_to_1e_12(rng):
    for n in (2, 3, 50, 1768):
        x = rng.uniform(-1, 1, size=n)
        y = 0.7 * x + 0.2 * rng.normal(size=n) + 0.05
        assert metrics.ccc(x, y) == pytest.approx(avec_calc_scores_ccc(x, y), rel=1e-12, abs=1e-12)
    # Identical series score (n - 1) / n, not 1, under AVEC's definition.
    assert metrics.ccc(x, x) == pytest.approx((x.size - 1) / x.size, rel=1e-12)


def test_ccc_unbiased_divides_every_moment_by_n_minus_1(rng):
    x = rng.uniform(-1, 1, size=200)
    y = 0.7 * x + 0.2 * rng.normal(size=200) + 0.05
    n = x.size
    assert metrics.ccc_unbiased(x, y) == pytest.approx(np_ccc_ddof1(x, y), rel=1e-12)
    assert metrics.ccc_unbiased(x, x) == pytest.approx(1.0, rel=1e-12)
    assert metrics.ccc_unbiased(x - x.mean(), -(x - x.mean())) == pytest.approx(-1.0, rel=1e-12)
    assert metrics.ccc_unbiased(x, y) == pytest.approx(metrics.ccc(x, y) * n / (n - 1), rel=1e-12)
    assert metrics.ccc_by_name("avec") is metrics.ccc
    assert metrics.ccc_by_name("unbiased") is metrics.ccc_unbiased
    with pytest.raises(ValueError, match="unknown CCC definition"):
        metrics.ccc_by_name("population")


@pytest.mark.parametrize("fn", [metrics.ccc, metrics.ccc_unbiased])
def test_ccc_constant_input(fn):
    x = np.array([0.1, -0.4, 0.3, 0.8])
    assert fn(x, np.full(4, 0.2)) == 0.0
    # Both constant with different means: denominator (mean difference)^2 > 0, so 0.
    assert fn(np.full(4, 0.5), np.full(4, -0.5)) == 0.0
    # Both constant and equal: 0 / 0.
    assert np.isnan(fn(np.full(4, 0.5), np.full(4, 0.5)))


@pytest.mark.parametrize("fn", [metrics.ccc, metrics.ccc_unbiased])
def test_ccc_single_sample_and_empty_are_nan(fn):
    assert np.isnan(fn([0.3], [0.1]))
    assert np.isnan(fn([], []))


def test_ccc_handles_nan_as_avec_calc_scores(rng):
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    x_nan, y_nan = x.copy(), y.copy()
    x_nan[[3, 17]] = np.nan
    y_nan[[11, 17, 30]] = np.nan
    expected = avec_calc_scores_ccc(x_nan, y_nan)
    assert np.isfinite(expected)
    assert metrics.ccc(x_nan, y_nan) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # NaN on one side only (a gap in the predictions).
    assert metrics.ccc(x, y_nan) == pytest.approx(avec_calc_scores_ccc(x, y_nan), rel=1e-12, abs=1e-12)
    # ignore_nan drops the pairs first; then it is the formula on the rest.
    keep = ~(np.isnan(x_nan) | np.isnan(y_nan))
    assert metrics.ccc(x_nan, y_nan, ignore_nan=True) == pytest.approx(
        avec_calc_scores_ccc(x[keep], y[keep]), rel=1e-12, abs=1e-12
    )
    assert np.isnan(metrics.ccc(np.full(5, np.nan), y[:5]))


def test_ccc_unbiased_nan_propagates_or_is_dropped_pairwise(rng):
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    x_nan, y_nan = x.copy(), y.copy()
    x_nan[3] = np.nan
    y_nan[11] = np.nan
    assert np.isnan(metrics.ccc_unbiased(x_nan, y_nan))
    keep = np.ones(20, bool)
    keep[[3, 11]] = False
    assert metrics.ccc_unbiased(x_nan, y_nan, ignore_nan=True) == pytest.approx(
        np_ccc_ddof1(x[keep], y[keep]), rel=1e-12
    )


def test_ccc_rejects_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        metrics.ccc([1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------------------
# StreamingCCC
# ---------------------------------------------------------------------------------------------------


def make_ccc_batches(rng, num_batches=25, batch=4, frames=30):
    """Batches of right-padded sequences with an offset mean (tests accumulator precision)."""
    batches = []
    for _ in range(num_batches):
        y_true = 0.4 + 0.1 * rng.normal(size=(batch, frames))
        y_pred = 0.8 * y_true + 0.05 * rng.normal(size=(batch, frames)) + 0.1
        mask = right_padded_mask(rng.integers(1, frames + 1, size=batch), frames)
        y_pred = np.where(mask > 0, y_pred, np.nan)  # padding must not leak
        batches.append((y_true.astype(np.float32), y_pred.astype(np.float32), mask))
    return batches


def concatenated_valid(batches):
    x = np.concatenate([t[m > 0] for t, _, m in batches])
    y = np.concatenate([p[m > 0] for _, p, m in batches])
    return x, y


def test_streaming_ccc_equals_ccc_of_concatenated_frames(rng):
    batches = make_ccc_batches(rng)
    metric = metrics.StreamingCCC()
    for y_true, y_pred, mask in batches:
        metric.update_state(y_true, y_pred, sample_weight=mask)
    x, y = concatenated_valid(batches)
    expected = avec_calc_scores_ccc(x, y)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    assert float(metric.result()) == pytest.approx(metrics.ccc(x, y), rel=1e-5)
    metric.reset_state()
    assert np.isnan(float(metric.result()))
    unbiased = metrics.StreamingCCC(definition="unbiased")
    for y_true, y_pred, mask in batches:
        unbiased.update_state(y_true, y_pred, sample_weight=mask)
    assert float(unbiased.result()) == pytest.approx(np_ccc_ddof1(x, y), rel=1e-5)


def test_streaming_ccc_in_a_compiled_function_and_without_mask(rng):
    batches = make_ccc_batches(rng, num_batches=5)
    metric = metrics.StreamingCCC()
    update = tf.function(metric.update_state, jit_compile=False)
    for y_true, _, _ in batches:
        update(y_true, 0.5 * y_true + 0.1)
    x = np.concatenate([t.ravel() for t, _, _ in batches])
    y_pred_all = np.concatenate([(0.5 * t + 0.1).ravel() for t, _, _ in batches])
    assert float(metric.result()) == pytest.approx(avec_calc_scores_ccc(x, y_pred_all), rel=1e-5)


def test_streaming_ccc_edge_cases():
    metric = metrics.StreamingCCC()
    metric.update_state([[0.3, 0.0]], [[0.1, 0.0]], sample_weight=[[1.0, 0.0]])
    assert np.isnan(float(metric.result()))  # a single valid frame
    metric.reset_state()
    metric.update_state([[0.1, -0.4, 0.3, 0.8]], [[0.25, 0.25, 0.25, 0.25]])
    assert float(metric.result()) == pytest.approx(0.0, abs=1e-12)  # constant prediction


def test_streaming_ccc_under_mirrored_strategy(rng):
    batches = make_ccc_batches(rng, num_batches=4)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        metric = metrics.StreamingCCC()

    @tf.function
    def step(y_true, y_pred, mask):
        strategy.run(metric.update_state, args=(y_true, y_pred), kwargs={"sample_weight": mask})

    for y_true, y_pred, mask in batches:
        step(y_true, y_pred, mask)
    x, y = concatenated_valid(batches)
    assert float(metric.result()) == pytest.approx(avec_calc_scores_ccc(x, y), rel=1e-5)


def test_streaming_metrics_as_keras_weighted_metrics_get_the_mask(rng):
    y = rng.normal(size=(12, 6)).astype(np.float32)
    labels = rng.integers(0, 3, size=(12, 6))
    mask = right_padded_mask(rng.integers(1, 7, size=12), 6)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(6, name="dense")(inputs))
    model.compile(
        loss=ConcordanceLoss(),
        metrics=[metrics.StreamingCCC(name="unweighted")],
        weighted_metrics=[metrics.StreamingCCC(name="ccc")],
        jit_compile=True,
    )
    pred = model.predict(y, verbose=0)
    logs = model.evaluate(y, y, sample_weight=mask, batch_size=4, verbose=0, return_dict=True)
    assert logs["ccc"] == pytest.approx(avec_calc_scores_ccc(y[mask > 0], pred[mask > 0]), rel=1e-5)
    assert logs["unweighted"] == pytest.approx(avec_calc_scores_ccc(y.ravel(), pred.ravel()), rel=1e-5)

    classifier = keras.Sequential([keras.Input((6,)), keras.layers.Dense(18), keras.layers.Reshape((6, 3))])
    classifier.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[metrics.StreamingMacroF1(num_classes=3)],
        jit_compile=True,
    )
    pred = classifier.predict(y, verbose=0).argmax(-1)
    logs = classifier.evaluate(y, labels, sample_weight=mask, batch_size=4, verbose=0, return_dict=True)
    expected = np_macro_prf(labels[mask > 0], pred[mask > 0], 3)[2]
    assert logs["f1_macro"] == pytest.approx(expected, rel=1e-6)


_TWO_REPLICA_SCRIPT = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cold_keras import metrics
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(0)
y_true = rng.normal(size=(16, 10)).astype("float32")
y_pred = (0.5 * y_true + rng.normal(size=(16, 10))).astype("float32")
mask = (rng.uniform(size=(16, 10)) > 0.3).astype("float32")
with strategy.scope():
    metric = metrics.StreamingCCC()
data = tf.data.Dataset.from_tensor_slices((y_true, y_pred, mask)).batch(4)
@tf.function
def step(a, b, w):
    strategy.run(lambda a, b, w: metric.update_state(a, b, sample_weight=w), args=(a, b, w))
for a, b, w in strategy.experimental_distribute_dataset(data):
    step(a, b, w)
print(repr(float(metric.result())))
"""


@pytest.mark.slow
def test_streaming_ccc_sums_across_two_replicas(rng):
    # Logical devices must be configured before TensorFlow starts, hence a fresh interpreter.
    result = subprocess.run(
        [sys.executable, "-c", _TWO_REPLICA_SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    value = float(result.stdout.strip().splitlines()[-1])
    data_rng = np.random.default_rng(0)
    y_true = data_rng.normal(size=(16, 10)).astype(np.float32)
    y_pred = (0.5 * y_true + data_rng.normal(size=(16, 10))).astype(np.float32)
    mask = data_rng.uniform(size=(16, 10)) > 0.3
    assert value == pytest.approx(avec_calc_scores_ccc(y_true[mask], y_pred[mask]), rel=1e-5)


def test_streaming_ccc_config_round_trip():
    metric = metrics.StreamingCCC(name="ccc_valence", definition="unbiased")
    assert keras.saving.get_registered_name(metrics.StreamingCCC) == "cold_keras>StreamingCCC"
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, metrics.StreamingCCC)
    assert restored.name == "ccc_valence"
    assert restored.get_config() == metric.get_config()
    assert restored.definition == "unbiased"
    with pytest.raises(ValueError, match="unknown CCC definition"):
        metrics.StreamingCCC(definition="population")


# ---------------------------------------------------------------------------------------------------
# Stacked updates: one computation for several metrics, the same state as their own updates
# ---------------------------------------------------------------------------------------------------


def test_ccc_statistics_feed_streaming_ccc_as_its_own_updates():
    rng = np.random.default_rng(0)
    g, b, t = 4, 3, 7
    x = rng.uniform(-1, 1, (g, b, t)).astype("float32")
    y = (x + rng.normal(scale=0.4, size=(g, b, t))).astype("float32")
    w = (rng.uniform(size=(g, b, t)) > 0.3).astype("float32")
    y[w == 0] = np.nan
    statistics = np.asarray(metrics.ccc_statistics(x, y, w))
    assert statistics.shape == (g, 6) and statistics.dtype == np.float64
    for row in range(g):
        own, fed, fed_list = metrics.StreamingCCC(), metrics.StreamingCCC(), metrics.StreamingCCC()
        for _ in range(2):  # two updates: the sums accumulate
            own.update_state(x[row], y[row], sample_weight=w[row])
            fed.add_statistics(statistics[row])
            fed_list.add_statistics(list(keras.ops.unstack(statistics[row])))
        for stat in ("n", "sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy"):
            np.testing.assert_allclose(float(getattr(fed, stat)), float(getattr(own, stat)), rtol=1e-12)
            np.testing.assert_allclose(float(getattr(fed_list, stat)), float(getattr(own, stat)), rtol=1e-12)
        np.testing.assert_allclose(float(fed.result()), float(own.result()), rtol=1e-6)
    unweighted = np.asarray(metrics.ccc_statistics(x, np.nan_to_num(y)))
    assert (unweighted[:, 0] == b * t).all()
    with pytest.raises(ValueError, match="6 statistics"):
        metrics.StreamingCCC().add_statistics([1.0, 2.0])
