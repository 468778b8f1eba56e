"""Tests of CalibratedStd: the NumPy interpolation of the calibration's maps, and its config round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cold_keras.layers import CalibratedStd

MAPS = {
    "av_valence": {"x": [0.2, 0.5, 0.9, 1.7], "y": [0.05, 0.1, 0.1, 0.4], "scale": 1.3, "num_frames": 100},
    "av_arousal": {"x": [0.4, 1.1], "y": [0.2, 0.3], "scale": 0.8},
    "audio_valence": {"x": [0.3, 0.6, 2.0], "y": [0.1, 0.2, 0.5], "scale": 1.1},
    "visual_arousal": {"x": [0.7], "y": [0.25], "scale": 2.0},  # one knot: a constant std
}


def _outputs(seed=0, weights=True):
    rng = np.random.default_rng(seed)
    shape = (2, 40)
    outputs = {
        "valence": rng.normal(size=shape).astype("float32"),
        "arousal": rng.normal(size=shape).astype("float32"),
        "audio_valence": rng.normal(size=shape).astype("float32"),
        "visual_arousal": rng.normal(size=shape).astype("float32"),
        "audio_sigma_norm": rng.uniform(0.3, 6.0, size=shape).astype("float32"),
        "visual_sigma_norm": rng.uniform(0.3, 6.0, size=shape).astype("float32"),
    }
    if weights:
        audio_weight = rng.uniform(size=shape).astype("float32")
        outputs["audio_weight"], outputs["visual_weight"] = audio_weight, 1.0 - audio_weight
    return outputs


def _numpy_std(outputs, maps, convention):
    """The map applied in NumPy, from the definition: scale * interp(u, x, y) of each output's score u."""
    scores = {}
    for m in ("audio", "visual"):
        norm = np.maximum(outputs[f"{m}_sigma_norm"].astype(np.float64), 1e-12)
        scores[m] = 1.0 / norm if convention == "informativeness" else norm
    if "audio_weight" in outputs:
        scores["av"] = sum(outputs[f"{m}_weight"].astype(np.float64) * scores[m] for m in ("audio", "visual"))
    else:
        scores["av"] = (scores["audio"] + scores["visual"]) / 2.0
    prefixes = {"av": "", "audio": "audio_", "visual": "visual_"}
    expected = {}
    for key, entry in maps.items():
        branch, dim = key.split("_", 1)
        expected[f"{prefixes[branch]}{dim}_std"] = entry["scale"] * np.interp(scores[branch], entry["x"], entry["y"])
    return expected


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
@pytest.mark.parametrize("weights", [True, False])
def test_output_equals_the_numpy_interpolation_of_the_calibration(convention, weights):
    outputs = _outputs(weights=weights)
    got = CalibratedStd(MAPS, convention)(outputs)
    expected = _numpy_std(outputs, MAPS, convention)
    assert set(got) == set(expected)
    for key, value in expected.items():
        value_got = np.asarray(got[key])
        assert value_got.dtype == np.float32 and value_got.shape == value.shape
        np.testing.assert_allclose(value_got, value.astype(np.float32), rtol=1e-6, atol=0)
    # Scores beyond the knots keep the end values (constant outside their range).
    assert np.isclose(np.asarray(got["visual_arousal_std"]), 0.5).all()


def test_a_model_without_sigma_has_a_constant_score():
    outputs = {"valence": np.zeros((1, 5), "float32")}
    got = CalibratedStd({"av_valence": {"x": [0.5, 1.5], "y": [0.1, 0.3], "scale": 2.0}})(outputs)
    np.testing.assert_allclose(np.asarray(got["valence_std"]), np.full((1, 5), 0.4), rtol=1e-6)


def test_outputs_the_model_lacks_are_skipped():
    outputs = _outputs()
    del outputs["audio_valence"]
    assert "audio_valence_std" not in CalibratedStd(MAPS)(outputs)


def test_in_a_compiled_function_it_equals_the_eager_result():
    outputs = _outputs(seed=1)
    layer = CalibratedStd(MAPS)
    eager = layer(outputs)
    traced = tf.function(layer)({k: tf.constant(v) for k, v in outputs.items()})
    for key in eager:
        np.testing.assert_array_equal(np.asarray(traced[key]), np.asarray(eager[key]))


def test_get_config_round_trip_keeps_the_knots_as_lists():
    layer = CalibratedStd(MAPS, "uncertainty", name="calibrated_std")
    config = layer.get_config()
    assert config["convention"] == "uncertainty"
    for key, entry in MAPS.items():
        assert config["maps"][key] == {"x": entry["x"], "y": entry["y"], "scale": entry["scale"]}
        assert isinstance(config["maps"][key]["x"], list) and isinstance(config["maps"][key]["y"], list)
    assert keras.saving.get_registered_name(CalibratedStd) == "cold_keras>CalibratedStd"
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, CalibratedStd)
    assert restored.get_config() == config
    outputs = _outputs(seed=2)
    for key, value in layer(outputs).items():
        np.testing.assert_array_equal(np.asarray(restored(outputs)[key]), np.asarray(value))
    with pytest.raises(ValueError, match="convention"):
        CalibratedStd(MAPS, "sigma")
