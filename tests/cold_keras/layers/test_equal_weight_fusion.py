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
