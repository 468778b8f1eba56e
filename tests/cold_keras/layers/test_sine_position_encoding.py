"""Tests of SinePositionEncoding against NumPy."""

import keras
import numpy as np

from cold_keras.layers import SinePositionEncoding
from tests.test_case import run_layer_test, run_model_saving_test


def _np_encoding(num_frames, dim, max_wavelength=10000.0):
    encoding = np.zeros((num_frames, dim))
    for t in range(num_frames):
        for i in range(0, dim, 2):
            angle = t / max_wavelength ** (i / dim)
            encoding[t, i] = np.sin(angle)
            if i + 1 < dim:
                encoding[t, i + 1] = np.cos(angle)
    return encoding


def test_layer_basics_and_numpy():
    x = np.random.default_rng(0).normal(size=(2, 7, 6)).astype("float32")
    out = run_layer_test(SinePositionEncoding, {}, x, expected_output_shape=(2, 7, 6))
    np.testing.assert_allclose(np.asarray(out), np.sqrt(6) * x + _np_encoding(7, 6), rtol=1e-5, atol=1e-5)


def test_odd_size_and_no_scaling():
    x = np.zeros((1, 4, 5), "float32")
    out = SinePositionEncoding(max_wavelength=100.0, scale_inputs=False)(x)
    np.testing.assert_allclose(np.asarray(out)[0], _np_encoding(4, 5, 100.0), rtol=1e-5, atol=1e-6)


def test_saving_round_trip(tmp_path):
    inputs = keras.Input((None, 6))
    model = keras.Model(inputs, SinePositionEncoding(name="position")(inputs))
    run_model_saving_test(model, np.ones((1, 3, 6), "float32"), tmp_path)
