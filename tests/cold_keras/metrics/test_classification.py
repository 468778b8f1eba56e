"""Tests of cold_keras.metrics.classification against NumPy references (and TFP for the ECE)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from cold_keras import metrics
from tests.cold_keras.metrics.references import np_ece, np_macro_prf, np_softmax, right_padded_mask


@pytest.fixture
def rng():
    return np.random.default_rng(7)


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
