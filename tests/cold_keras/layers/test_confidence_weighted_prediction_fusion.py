"""Tests of ConfidenceWeightedPredictionFusion against NumPy."""

import keras
import numpy as np
import pytest

from cold_keras.layers import ConfidenceWeightedPredictionFusion
from tests.test_case import run_layer_test, run_model_saving_test

B, T, D, C = 2, 5, 6, 3


def _np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _classification_inputs(seed=0):
    rng = np.random.default_rng(seed)
    audio = [3.0 * rng.normal(size=(B, T, C)).astype("float32") for _ in range(2)]
    visual = [3.0 * rng.normal(size=(B, T, C)).astype("float32") for _ in range(2)]
    return [audio, visual]


def _regression_inputs(seed=0):
    rng = np.random.default_rng(seed)
    audio = [rng.uniform(-1, 1, size=(B, T)).astype("float32") for _ in range(2)]
    visual = [rng.uniform(-1, 1, size=(B, T)).astype("float32") for _ in range(2)]
    features = [rng.normal(size=(B, T, D)).astype("float32") for _ in range(2)]
    return [audio, visual, *features]


def test_layer_basics_classification():
    run_layer_test(
        ConfidenceWeightedPredictionFusion,
        {"task": "classification"},
        _classification_inputs(),
        expected_output_shape=([(B, T, C), (B, T, C)], (B, T), (B, T)),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_layer_basics_regression():
    run_layer_test(
        ConfidenceWeightedPredictionFusion,
        {"task": "regression", "epsilon": 1e-3},
        _regression_inputs(),
        expected_output_shape=([(B, T), (B, T)], (B, T), (B, T)),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_classification_matches_numpy():
    audio, visual = _classification_inputs()
    fused, w_a, w_v = ConfidenceWeightedPredictionFusion("classification")([audio, visual])
    c_a = np.mean([_np_softmax(z).max(axis=-1) for z in audio], axis=0)
    c_v = np.mean([_np_softmax(z).max(axis=-1) for z in visual], axis=0)
    expected_w_a = c_a / (c_a + c_v)
    np.testing.assert_allclose(np.asarray(w_a), expected_w_a, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(w_v), 1.0 - expected_w_a, rtol=1e-5)
    for z_fused, z_a, z_v in zip(fused, audio, visual):
        mixture = expected_w_a[..., None] * _np_softmax(z_a) + (1 - expected_w_a[..., None]) * _np_softmax(z_v)
        np.testing.assert_allclose(np.exp(np.asarray(z_fused, np.float64)), mixture, rtol=1e-4, atol=1e-6)


def test_regression_matches_numpy():
    inputs = _regression_inputs()
    layer = ConfidenceWeightedPredictionFusion("regression", epsilon=1e-3)
    fused, w_a, _ = layer(inputs)
    audio, visual, f_a, f_v = inputs
    k_a, b_a = (np.asarray(w, np.float64) for w in layer.audio_confidence.weights)
    k_v, b_v = (np.asarray(w, np.float64) for w in layer.visual_confidence.weights)
    c_a = np.logaddexp(0.0, (f_a @ k_a + b_a)[..., 0]) + 1e-3
    c_v = np.logaddexp(0.0, (f_v @ k_v + b_v)[..., 0]) + 1e-3
    expected_w_a = c_a / (c_a + c_v)
    np.testing.assert_allclose(np.asarray(w_a), expected_w_a, rtol=1e-5)
    for y, y_a, y_v in zip(fused, audio, visual):
        np.testing.assert_allclose(np.asarray(y), expected_w_a * y_a + (1 - expected_w_a) * y_v, rtol=1e-5, atol=1e-6)


def test_confident_modality_dominates():
    # Audio certain of class 2, visual uniform: the audio weight is 1 / (1 + 1/3) = 0.75.
    audio = [np.tile(np.array([0.0, 0.0, 60.0], "float32"), (1, 2, 1))]
    visual = [np.zeros((1, 2, 3), "float32")]
    _, w_a, _ = ConfidenceWeightedPredictionFusion("classification")([audio, visual])
    np.testing.assert_allclose(np.asarray(w_a), np.full((1, 2), 0.75), rtol=1e-6)


def test_regression_needs_features():
    layer = ConfidenceWeightedPredictionFusion("regression")
    audio, visual = _regression_inputs()[:2]
    with pytest.raises(ValueError, match="audio_features"):
        layer([audio, visual])


def test_saving_round_trip(tmp_path):
    inputs = _regression_inputs()
    symbolic = [
        [keras.Input((None,)) for _ in range(2)],
        [keras.Input((None,)) for _ in range(2)],
        keras.Input((None, D)),
        keras.Input((None, D)),
    ]
    model = keras.Model(symbolic, ConfidenceWeightedPredictionFusion("regression", name="fusion")(symbolic))
    run_model_saving_test(model, inputs, tmp_path)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_presence_gives_an_absent_modality_exactly_zero_weight(task):
    inputs = _regression_inputs(4) if task == "regression" else _classification_inputs(4)
    p_a = np.ones((B, T), "float32")
    p_v = np.ones((B, T), "float32")
    p_v[0, :2] = 0.0
    p_a[1, 3] = 0.0
    fusion = ConfidenceWeightedPredictionFusion(task)
    fused, w_a, w_v = fusion(inputs, presence=[p_a, p_v])
    w_a, w_v = np.asarray(w_a), np.asarray(w_v)
    assert np.all(w_v[0, :2] == 0.0) and np.all(w_a[0, :2] == 1.0)
    assert w_a[1, 3] == 0.0 and w_v[1, 3] == 1.0
    audio, visual = inputs[0], inputs[1]
    for k, value in enumerate(fused):
        value = np.asarray(value)
        assert np.all(np.isfinite(value))
        if task == "regression":
            np.testing.assert_array_equal(value[0, :2], audio[k][0, :2])
            np.testing.assert_array_equal(value[1, 3], visual[k][1, 3])
        else:  # the mixture of probabilities reduces to the present modality's softmax
            np.testing.assert_allclose(_np_softmax(value[0, :2]), _np_softmax(audio[k][0, :2]), atol=1e-6)
            np.testing.assert_allclose(_np_softmax(value[1, 3]), _np_softmax(visual[k][1, 3]), atol=1e-6)
