"""Tests of MaskedTemporalPooling against NumPy."""

import keras
import numpy as np
import pytest

from cold_keras.layers import MaskedTemporalPooling
from tests.test_case import run_layer_test, run_model_saving_test


def _data():
    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], "float32")
    return rng.normal(size=(3, 6)).astype("float32"), rng.normal(size=(3, 6, 3)).astype("float32"), mask


def test_layer_basics():
    values, logits, mask = _data()
    run_layer_test(
        MaskedTemporalPooling,
        {"task": "regression"},
        values,
        call_kwargs={"mask": mask},
        expected_output_shape=(3,),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )
    run_layer_test(
        MaskedTemporalPooling,
        {"task": "classification"},
        logits,
        call_kwargs={"mask": mask},
        expected_output_shape=(3, 3),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_regression_matches_numpy():
    values, _, mask = _data()
    out = np.asarray(MaskedTemporalPooling("regression")(values, mask=mask))
    np.testing.assert_allclose(out[0], values[0].mean(), rtol=1e-6)
    np.testing.assert_allclose(out[1], values[1, :2].mean(), rtol=1e-6)
    # A sequence without valid frames falls back to all its frames.
    np.testing.assert_allclose(out[2], values[2].mean(), rtol=1e-6)


def test_classification_is_log_of_mean_probabilities():
    _, logits, mask = _data()
    out = np.asarray(MaskedTemporalPooling("classification")(logits, mask=mask), np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(out[0]), p[0].mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.exp(out[1]), p[1, :2].mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.exp(out).sum(-1), np.ones(3), rtol=1e-5)


def test_invalid_task():
    with pytest.raises(ValueError, match="task"):
        MaskedTemporalPooling("ranking")


def test_saving_round_trip(tmp_path):
    values, _, mask = _data()
    inputs, mask_in = keras.Input((None,)), keras.Input((None,))
    model = keras.Model([inputs, mask_in], MaskedTemporalPooling(name="pool")(inputs, mask=mask_in))
    run_model_saving_test(model, [values, mask], tmp_path)
