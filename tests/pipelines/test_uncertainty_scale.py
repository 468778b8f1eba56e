"""The interval scale of the uncertainty calibration: over the pooled validation frames or per recording."""

import json

import numpy as np
import pytest
from scipy.stats import norm

from pipelines import uncertainty
from pipelines.errors import ConfigError


def _recordings(spreads, n=400, seed=0):
    """Recordings of a model without sigma (constant score): errors ~ N(0, spread) per recording."""
    rng = np.random.default_rng(seed)
    out = []
    for spread in spreads:
        labels = rng.uniform(-0.5, 0.5, size=(2, n))
        predictions = labels + rng.normal(0.0, spread, size=(2, n))
        out.append(
            {
                "name": f"r{spread}",
                "valence": labels[0],
                "arousal": labels[1],
                "outputs": {"valence": predictions[0], "arousal": predictions[1]},
            }
        )
    return out


def _reference_scale(recordings, dim, by_recording, level=0.9):
    """Constant score: g is the mean |e| of all frames; scale = quantile(|e| / g) / z."""
    errors = [np.abs(r[dim] - r["outputs"][dim]) for r in recordings]
    g = np.mean(np.concatenate(errors))
    z = norm.ppf((1 + level) / 2)
    if by_recording:
        return max(np.quantile(e / g, level) for e in errors) / z
    return np.quantile(np.concatenate(errors) / g, level) / z


@pytest.mark.parametrize("scale_by", ["frames", "recordings"])
def test_scale_matches_the_reference_quantile(scale_by):
    recordings = _recordings([0.05, 0.1, 0.2])
    calibration = uncertainty.fit_calibration(recordings, scale_by=scale_by)
    for dim in ("valence", "arousal"):
        expected = _reference_scale(recordings, dim, by_recording=scale_by == "recordings")
        assert calibration.maps[f"av_{dim}"]["scale"] == pytest.approx(expected, rel=1e-9)


def test_per_recording_scale_covers_every_validation_recording_and_is_wider():
    recordings = _recordings([0.05, 0.1, 0.2])
    pooled = uncertainty.fit_calibration(recordings)
    per_recording = uncertainty.fit_calibration(recordings, scale_by="recordings")
    z = norm.ppf(0.95)
    for dim in ("valence", "arousal"):
        assert per_recording.maps[f"av_{dim}"]["scale"] > pooled.maps[f"av_{dim}"]["scale"]
        coverages = []
        for recording in uncertainty.attach_std(recordings, per_recording):
            error = np.abs(recording[dim] - recording["outputs"][dim])
            coverages.append(np.mean(error <= z * recording["outputs"][f"{dim}_std"]))
        assert min(coverages) >= 0.9 - 1e-9 and max(coverages) > 0.95


def test_scale_by_is_saved_and_an_older_file_reads_as_frames(tmp_path):
    calibration = uncertainty.fit_calibration(_recordings([0.1, 0.2]), scale_by="recordings")
    path = calibration.save(tmp_path)
    assert uncertainty.Calibration.load(tmp_path).scale_by == "recordings"
    data = json.loads(path.read_text())
    del data["scale_by"]
    path.write_text(json.dumps(data))
    assert uncertainty.Calibration.load(tmp_path).scale_by == "frames"
    with pytest.raises(ConfigError, match="--scale-by must be one of frames, recordings"):
        uncertainty.fit_calibration(_recordings([0.1]), scale_by="speakers")
