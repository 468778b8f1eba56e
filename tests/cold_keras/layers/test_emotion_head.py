"""Tests of EmotionHead against NumPy."""

import keras
import numpy as np
import pytest

from cold_keras.layers import EmotionHead
from tests.test_case import run_layer_test, run_model_saving_test

B, T, K = 2, 5, 4


def _x():
    return np.random.default_rng(0).normal(size=(B, T, K)).astype("float32")


@pytest.mark.parametrize("task, shape", [("regression", (B, T)), ("classification", (B, T, 3))])
def test_layer_basics(task, shape):
    run_layer_test(
        EmotionHead,
        {"task": task},
        _x(),
        expected_output_shape=(shape, shape),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_regression_matches_numpy():
    x = _x()
    head = EmotionHead("regression")
    valence, arousal = head(x)
    kernel, bias = (np.asarray(w, np.float64) for w in head.dense.weights)
    z = x @ kernel + bias
    np.testing.assert_allclose(np.asarray(valence), np.tanh(z[..., 0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(arousal), np.tanh(z[..., 1]), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(valence)).max() <= 1.0


def test_classification_matches_numpy():
    x = _x()
    head = EmotionHead("classification", num_classes=4)
    valence, arousal = head(x)
    kernel, bias = (np.asarray(w, np.float64) for w in head.dense.weights)
    z = x @ kernel + bias
    np.testing.assert_allclose(np.asarray(valence), z[..., :4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(arousal), z[..., 4:], rtol=1e-5, atol=1e-5)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="task"):
        EmotionHead("ordinal")
    with pytest.raises(ValueError, match="num_classes"):
        EmotionHead("classification", num_classes=1)


def test_saving_round_trip(tmp_path):
    inputs = keras.Input((None, K))
    model = keras.Model(inputs, EmotionHead("classification", name="head")(inputs))
    run_model_saving_test(model, _x(), tmp_path)
