"""Tests of cold_keras.metrics against independent NumPy implementations (and TFP for the ECE)."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from cold_keras import metrics
from cold_keras.losses import ConcordanceLoss

# ---------------------------------------------------------------------------------------------------
# NumPy references (written from the definitions, not from the implementation)
# ---------------------------------------------------------------------------------------------------


def np_ccc_ddof1(x, y):
    """CCC with np.cov / np.var (ddof=1); x, y already cleaned of padding."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.cov(x, y, ddof=1)[0, 1]
    return 2 * cov / (np.var(x, ddof=1) + np.var(y, ddof=1) + (np.mean(x) - np.mean(y)) ** 2)


def avec_calc_scores_ccc(x, y):
    """CCC exactly as AVEC 2019's calc_scores.py writes it (nanmean / nansum, variances / (len - 1))."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x_mean = np.nanmean(x)
    y_mean = np.nanmean(y)
    covariance = np.nanmean((x - x_mean) * (y - y_mean))
    x_var = 1.0 / (len(x) - 1) * np.nansum((x - x_mean) ** 2)
    y_var = 1.0 / (len(y) - 1) * np.nansum((y - y_mean) ** 2)
    return (2 * covariance) / (x_var + y_var + (x_mean - y_mean) ** 2)


def np_macro_prf(y_true, y_pred, num_classes):
    """Macro precision/recall/F1 over the classes present in y_true or y_pred, by explicit counting."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    precisions, recalls, f1s = [], [], []
    for c in range(num_classes):
        tp = np.sum((y_true == c) & (y_pred == c))
        fp = np.sum((y_true != c) & (y_pred == c))
        fn = np.sum((y_true == c) & (y_pred != c))
        if tp + fp + fn == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    return np.mean(precisions), np.mean(recalls), np.mean(f1s)


def np_ece(probs, labels, num_bins):
    """Top-label ECE by looping over equal-width bins [b/M, (b+1)/M), the last one closed."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    total = 0.0
    for b in range(num_bins):
        lo, hi = b / num_bins, (b + 1) / num_bins
        upper = confidence <= hi if b == num_bins - 1 else confidence < hi
        in_bin = (confidence >= lo) & upper
        if in_bin.any():
            total += in_bin.sum() / len(labels) * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return total


def np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def right_padded_mask(lengths, num_frames):
    return (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


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
# precision_recall_f1, StreamingMacroF1
# ---------------------------------------------------------------------------------------------------


def test_precision_recall_f1_matches_numpy_reference(rng):
    y_true = rng.integers(0, 3, size=300)
    y_pred = np.where(rng.uniform(size=300) < 0.6, y_true, rng.integers(0, 3, size=300))
    got = metrics.precision_recall_f1(y_true, y_pred, num_classes=3)
    np.testing.assert_allclose(got, np_macro_prf(y_true, y_pred, 3), rtol=1e-12)
    # Scores with one more axis are reduced with argmax.
    scores = rng.normal(size=(300, 3))
    got_scores = metrics.precision_recall_f1(y_true, scores)
    np.testing.assert_allclose(got_scores, np_macro_prf(y_true, scores.argmax(-1), 3), rtol=1e-12)


def test_precision_recall_f1_absent_class_and_errors():
    # Class 2 never occurs: the macro average runs over classes 0 and 1 only.
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    got = metrics.precision_recall_f1(y_true, y_pred, num_classes=3)
    np.testing.assert_allclose(got, np_macro_prf(y_true, y_pred, 3), rtol=1e-12)
    # A predicted class with no support gets recall 0 and precision 0 and counts in the average.
    got = metrics.precision_recall_f1([0, 0], [0, 2], num_classes=3)
    np.testing.assert_allclose(got, np_macro_prf([0, 0], [0, 2], 3), rtol=1e-12)
    assert all(np.isnan(metrics.precision_recall_f1([], [], num_classes=3)))
    with pytest.raises(ValueError, match="outside"):
        metrics.precision_recall_f1([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="do not match"):
        metrics.precision_recall_f1([0, 1, 2], [0, 1], num_classes=3)


@pytest.mark.parametrize("prediction_kind", ["logits", "class_ids"])
def test_streaming_macro_f1_equals_numpy_on_concatenated_valid_frames(rng, prediction_kind):
    metric = metrics.StreamingMacroF1(num_classes=3)
    all_true, all_pred = [], []
    for _ in range(6):
        labels = rng.integers(0, 3, size=(4, 10))
        logits = rng.normal(size=(4, 10, 3)) + 1.5 * np.eye(3)[labels]
        mask = right_padded_mask(rng.integers(1, 11, size=4), 10)
        labels_padded = np.where(mask > 0, labels, -1)
        y_pred = logits.astype(np.float32) if prediction_kind == "logits" else logits.argmax(-1)
        metric.update_state(labels_padded, y_pred, sample_weight=mask)
        all_true.append(labels[mask > 0])
        all_pred.append(logits.argmax(-1)[mask > 0])
    expected = np_macro_prf(np.concatenate(all_true), np.concatenate(all_pred), 3)
    assert float(metric.result()) == pytest.approx(expected[2], rel=1e-6)
    precision, recall, f1 = (float(v) for v in metric.precision_recall_f1())
    np.testing.assert_allclose([precision, recall, f1], expected, rtol=1e-6)
    metric.reset_state()
    assert np.isnan(float(metric.result()))


def test_streaming_macro_f1_config_round_trip_and_validation():
    metric = metrics.StreamingMacroF1(num_classes=4, name="f1_valence")
    assert keras.saving.get_registered_name(metrics.StreamingMacroF1) == "cold_keras>StreamingMacroF1"
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, metrics.StreamingMacroF1)
    assert restored.num_classes == 4 and restored.name == "f1_valence"
    assert restored.get_config() == metric.get_config()
    with pytest.raises(ValueError, match="num_classes"):
        metrics.StreamingMacroF1(num_classes=1)


# ---------------------------------------------------------------------------------------------------
# ECE, reliability bins, temperature scaling
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def overconfident(rng):
    """Logits whose softmax is calibrated, the labels drawn from it, and 4x sharper logits."""
    n = 4000
    logits = rng.normal(scale=1.0, size=(n, 3))
    probs = np_softmax(logits)
    labels = np.array([rng.choice(3, p=p) for p in probs])
    return logits, labels, 4.0 * logits


def test_ece_matches_numpy_reference_and_tfp(rng):
    logits = 2.0 * rng.normal(size=(500, 3))
    labels = rng.integers(0, 3, size=500)
    probs = np_softmax(logits)
    for num_bins in (5, 10, 15):
        got = metrics.expected_calibration_error(probs, labels, num_bins=num_bins)
        assert got == pytest.approx(np_ece(probs, labels, num_bins), rel=1e-10)
        ece_tfp = tfp.stats.expected_calibration_error(
            num_bins, logits=tf.constant(logits, tf.float32), labels_true=tf.constant(labels, tf.int32)
        )
        assert got == pytest.approx(float(ece_tfp), rel=1e-4, abs=1e-6)


def test_ece_confidence_exactly_on_bin_edges():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])
    got = metrics.expected_calibration_error(probs, labels, num_bins=10)
    assert got == pytest.approx(np_ece(probs, labels, 10), rel=1e-12)


def test_reliability_bins_match_numpy_reference(rng):
    probs = np_softmax(2.0 * rng.normal(size=(300, 3)))
    labels = rng.integers(0, 3, size=300)
    bins = metrics.reliability_bins(probs, labels, num_bins=10)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    for b in range(10):
        upper = confidence <= (b + 1) / 10 if b == 9 else confidence < (b + 1) / 10
        in_bin = (confidence >= b / 10) & upper
        assert bins.count[b] == in_bin.sum()
        if in_bin.any():
            assert bins.confidence[b] == pytest.approx(confidence[in_bin].mean(), rel=1e-12)
            assert bins.accuracy[b] == pytest.approx(correct[in_bin].mean(), rel=1e-12)
        else:
            assert np.isnan(bins.confidence[b]) and np.isnan(bins.accuracy[b])
    assert bins.count.sum() == 300
    assert bins.count[:3].sum() == 0  # a 3-class top-label confidence is at least 1/3


def test_ece_rejects_bad_input():
    with pytest.raises(ValueError, match="num_bins"):
        metrics.expected_calibration_error([[0.5, 0.5]], [0], num_bins=0)
    with pytest.raises(ValueError, match="leading shape"):
        metrics.expected_calibration_error([[0.5, 0.5], [0.1, 0.9]], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        metrics.expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int))


def test_temperature_scaling_lowers_ece_of_overconfident_logits(overconfident):
    _, labels, sharp = overconfident
    val, test = slice(0, 2000), slice(2000, None)
    temperature = metrics.temperature_scale(sharp[val], labels[val], num_draws=100, seed=0)
    assert 2.0 < temperature < 8.0  # the sharpening factor is 4
    before = np_ece(np_softmax(sharp[test]), labels[test], 10)
    after = np_ece(np_softmax(metrics.apply_temperature(sharp[test], temperature)), labels[test], 10)
    assert after < 0.5 * before
    # Same seed, same draws.
    assert metrics.temperature_scale(sharp[val], labels[val], seed=0) == temperature


def test_temperature_scaling_keeps_t_1_for_calibrated_logits_when_nothing_is_better(overconfident):
    logits, labels, _ = overconfident
    temperature = metrics.temperature_scale(logits, labels, num_draws=0)
    assert temperature == 1.0
    chosen = metrics.temperature_scale(logits, labels, num_draws=50, seed=3)
    ece_chosen = np_ece(np_softmax(logits / chosen), labels, 10)
    assert ece_chosen <= np_ece(np_softmax(logits), labels, 10)


def test_apply_temperature_divides_logits_and_keeps_argmax(rng):
    logits = rng.normal(size=(20, 3))
    scaled = metrics.apply_temperature(logits, 2.5)
    np.testing.assert_allclose(scaled, logits / 2.5, rtol=1e-15)
    np.testing.assert_array_equal(scaled.argmax(-1), logits.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        metrics.apply_temperature(logits, 0.0)
    with pytest.raises(ValueError, match="low < high"):
        metrics.temperature_scale(logits, np.zeros(20, int), low=1.0, high=0.5)


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


def test_confusion_matrices_feed_streaming_macro_f1_as_its_own_updates():
    rng = np.random.default_rng(1)
    g, b, t, c = 3, 4, 5, 3
    labels = rng.integers(0, c, (g, b, t)).astype("int32")
    labels[0, 0, 0] = -1  # padding label: not counted
    logits = rng.normal(size=(g, b, t, c)).astype("float32")
    w = (rng.uniform(size=(g, b, t)) > 0.2).astype("float32")
    confusion = np.asarray(metrics.confusion_matrices(labels, logits, c, w))
    ids = np.asarray(metrics.confusion_matrices(labels, logits.argmax(-1), c))
    assert confusion.shape == (g, c, c)
    for row in range(g):
        own, fed = metrics.StreamingMacroF1(c), metrics.StreamingMacroF1(c)
        own.update_state(labels[row], logits[row], sample_weight=w[row])
        fed.add_confusion(confusion[row])
        np.testing.assert_array_equal(np.asarray(fed.confusion), np.asarray(own.confusion))
        assert float(fed.result()) == float(own.result())
        unweighted = metrics.StreamingMacroF1(c)
        unweighted.update_state(labels[row], logits[row].argmax(-1))
        np.testing.assert_array_equal(ids[row], np.asarray(unweighted.confusion))
