"""Tests of EqualWeightFusion."""

import keras
import numpy as np

from cold_keras.layers import EqualWeightFusion
from tests.test_case import run_layer_test, run_model_saving_test


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(2, 5, 3)).astype("float32") for _ in range(2)]


def test_layer_basics_and_numpy():
    inputs = _inputs()
    out = run_layer_test(EqualWeightFusion, {}, inputs, expected_output_shape=(2, 5, 3))
    np.testing.assert_allclose(np.asarray(out), (inputs[0] + inputs[1]) / 2.0, rtol=1e-6)


def test_saving_round_trip(tmp_path):
    symbolic = [keras.Input((None, 3)) for _ in range(2)]
    model = keras.Model(symbolic, EqualWeightFusion(name="fusion")(symbolic))
    run_model_saving_test(model, _inputs(), tmp_path)


def test_presence_averages_the_present_contexts_only():
    h_a, h_v = _inputs()
    p_a = np.array([[1, 1, 0, 1, 0]] * 2, "float32")
    p_v = np.array([[1, 0, 1, 1, 0]] * 2, "float32")
    out = np.asarray(EqualWeightFusion()([h_a, h_v], presence=[p_a, p_v]))
    np.testing.assert_allclose(out[:, 0], (h_a[:, 0] + h_v[:, 0]) / 2.0, rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], h_a[:, 1])
    np.testing.assert_array_equal(out[:, 2], h_v[:, 2])
    np.testing.assert_array_equal(out[:, 4], np.zeros_like(out[:, 4]))
