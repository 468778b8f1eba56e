"""ConformalBounds (the in-graph conformal intervals) against the NumPy ConformalCalibration it is built
from: random signals, padding and mask, absent modalities, both normalised and Mondrian fits."""

import json

import keras
import numpy as np
import pytest

from cold_keras.layers import ConformalBounds
from pipelines.evaluation import conformal

KEYS = ("valence", "arousal", "audio_valence", "audio_arousal", "visual_valence", "visual_arousal")


def _outputs(rng, n):
    """One recording's outputs with every signal the fit can use (presence flags and atypicality too)."""
    y = {d: np.tanh(rng.standard_normal(n)) for d in conformal.DIMENSIONS}
    damaged = rng.uniform(size=n) < 0.3
    outputs = {}
    for d in conformal.DIMENSIONS:
        audio = y[d] + 0.1 * rng.standard_normal(n)
        visual = y[d] + 0.1 * rng.standard_normal(n) + np.where(damaged, rng.normal(0, 0.6, n), 0.0)
        outputs[f"audio_{d}"], outputs[f"visual_{d}"] = audio, visual
        outputs[d] = 0.5 * (audio + visual)
    outputs["visual_weight"] = np.clip(0.5 + 0.1 * rng.standard_normal(n), 0, 1)
    outputs["audio_weight"] = 1.0 - outputs["visual_weight"]
    for m in ("audio", "visual"):
        outputs[f"{m}_sigma_norm"] = np.exp(0.3 * rng.standard_normal(n))
        outputs[f"{m}_atypicality"] = np.abs(rng.standard_normal(n)) * np.where(damaged, 3.0, 1.0)
    outputs = {k: v.astype(np.float32) for k, v in outputs.items()}
    flags = {f"{m}_present": (rng.uniform(size=n) > 0.1).astype(np.float32) for m in ("audio", "visual")}
    return y, outputs, flags


def _calibration(normalized, num_bins, seed=0):
    rng = np.random.default_rng(seed)
    recordings = []
    for i in range(6):
        y, outputs, flags = _outputs(rng, 150)
        recordings.append({"name": f"r{i}", "outputs": outputs, **flags, **y})
    return conformal.fit(recordings, normalized=normalized, num_bins=num_bins, groups=[f"g{i % 3}" for i in range(6)])


def _numpy_bounds(calibration, outputs, flags, lengths, level=None):
    """NumPy bounds of each row up to its length, NaN on the padding."""
    result = {}
    for row, n in enumerate(lengths):
        row_outputs = {k: v[row, :n] for k, v in {**outputs, **flags}.items()}
        for name, value in calibration.bounds(row_outputs, level).items():
            if name.endswith(("_lower", "_upper")):
                result.setdefault(name, np.full(outputs["valence"].shape, np.nan))[row, :n] = value
    return result


def _batch(seed, lengths):
    """Two recordings padded to one batch (garbage on the padding, which the mask must hide)."""
    rng = np.random.default_rng(seed)
    t = max(lengths)
    rows = [_outputs(rng, t)[1:] for _ in lengths]
    outputs = {k: np.stack([r[0][k] for r in rows]) for k in rows[0][0]}
    flags = {k: np.stack([r[1][k] for r in rows]) for k in rows[0][1]}
    mask = np.stack([np.arange(t) < n for n in lengths]).astype(np.float32)
    return outputs, flags, mask


@pytest.mark.parametrize("normalized,num_bins", [(False, 3), (True, 1), (True, 3)])
def test_layer_matches_the_numpy_calibration_on_padded_batches(normalized, num_bins):
    calibration = _calibration(normalized, num_bins)
    assert "visual_absent" in calibration.signals["valence"]["names"]
    assert "disagreement_smooth" in calibration.signals["valence"]["names"]
    lengths = (120, 77)
    outputs, flags, mask = _batch(1, lengths)
    for level in (None, 0.5):
        layer = ConformalBounds.from_calibration(calibration.to_json(), level)
        got = {k: np.asarray(v) for k, v in layer({**outputs, **flags, "mask": mask}).items()}
        expected = _numpy_bounds(calibration, outputs, flags, lengths, level)
        assert set(got) == set(expected) == {f"{k}_{side}" for k in KEYS for side in ("lower", "upper")}
        for name, value in expected.items():
            real = ~np.isnan(value)
            assert got[name].dtype == np.float32
            # Both in float64, the layer's cast to float32 last: within one float32 rounding.
            np.testing.assert_allclose(got[name][real], value[real], rtol=2e-7, atol=1e-6, err_msg=name)
    # The padding of the shorter row does not reach its real frames: the same row alone gives the same bounds.
    alone = layer({k: v[1:, : lengths[1]] for k, v in {**outputs, **flags, "mask": mask}.items()})
    np.testing.assert_allclose(np.asarray(alone["valence_lower"])[0], got["valence_lower"][1, : lengths[1]], atol=1e-6)


def test_without_mask_and_flags_every_frame_is_real_and_present():
    calibration = _calibration(False, 3)
    outputs, _, _ = _batch(2, (60, 60))
    layer = ConformalBounds.from_calibration(calibration.to_json())
    got = layer(outputs)
    ones = {f"{m}_present": np.ones_like(outputs["valence"]) for m in ("audio", "visual")}
    expected = _numpy_bounds(calibration, outputs, ones, (60, 60))
    np.testing.assert_allclose(np.asarray(got["arousal_upper"]), expected["arousal_upper"], atol=2e-6)
    # Outputs the model lacks give no bounds (a model without unimodal branches).
    fused_only = {k: v for k, v in outputs.items() if not k.startswith(("audio_v", "audio_a", "visual_v", "visual_a"))}
    fused_layer = ConformalBounds(
        {d: {"names": ["log_sigma_audio"], "mean": [0.0], "scale": [1.0]} for d in conformal.DIMENSIONS},
        {"av_valence": {"coef": [0.0, 1.0], "edges": [], "quantiles": [0.5]}},
    )
    got = fused_layer(fused_only)
    assert set(got) == {"valence_lower", "valence_upper"}
    half = 0.5 * np.ones_like(outputs["valence"])
    np.testing.assert_allclose(np.asarray(got["valence_upper"]) - outputs["valence"], half, atol=1e-6)


def test_config_round_trip_and_bad_arguments():
    calibration = _calibration(True, 3)
    layer = ConformalBounds.from_calibration(calibration.to_json(), name="conformal_bounds")
    config = json.loads(json.dumps(layer.get_config()))
    again = ConformalBounds.from_config(config)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.get_config() == layer.get_config() == restored.get_config()
    outputs, flags, mask = _batch(3, (50, 40))
    inputs = {**outputs, **flags, "mask": mask}
    first, second = layer(inputs), restored(inputs)
    for name in first:
        np.testing.assert_array_equal(np.asarray(first[name]), np.asarray(second[name]))
    with pytest.raises(ValueError, match="was not fitted"):
        ConformalBounds.from_calibration(calibration.to_json(), 0.7)
    keys = {"av_valence": {"coef": [0.0], "edges": [], "quantiles": [0.5]}}
    with pytest.raises(ValueError, match="coefficients"):
        ConformalBounds({"valence": {"names": ["visual_weight"], "mean": [0.0], "scale": [1.0]}}, keys)
