"""`.keras` files saved by an earlier version of the builders (tests/data/saved_models, written at
commit f8a15c8 by its make.py) load, predict as they did, and match today's builders layer for layer."""

from pathlib import Path

import keras
import numpy as np
import pytest

from cold_keras.models import MODEL_NAMES, build_model, inference_model

DATA = Path(__file__).resolve().parents[2] / "data" / "saved_models"
TINY = dict(gru_units=4, gru_layers=1, latent_dim=4, num_heads=2, transformer_dim=4, num_transformer_layers=1, seed=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_an_earlier_keras_file_loads_predicts_the_same_and_fits_todays_builder(name):
    batch = dict(np.load(DATA / "batch.npz"))
    expected = dict(np.load(DATA / f"{name}_outputs.npz"))
    loaded = keras.saving.load_model(DATA / f"{name}.keras")
    outputs = inference_model(loaded)(batch, training=False)
    assert sorted(outputs) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(outputs[key]), value, rtol=1e-5, atol=1e-6, err_msg=key)

    today = build_model(name, audio_dim=5, visual_dim=4, **TINY)
    assert [layer.name for layer in today.layers] == [layer.name for layer in loaded.layers]
    # (weight paths hold auto-numbered sublayer names that depend on what the process built before)
    assert [tuple(w.shape) for w in today.weights] == [tuple(w.shape) for w in loaded.weights]
    today.set_weights(loaded.get_weights())
    rebuilt = inference_model(today)(batch, training=False)
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(rebuilt[key]), value, rtol=1e-5, atol=1e-6, err_msg=key)
