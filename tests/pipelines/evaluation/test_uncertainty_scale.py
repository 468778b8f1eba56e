"""The interval scale of the uncertainty calibration: over the pooled validation frames or per recording."""

import json
import re

import numpy as np
import pytest
from scipy.stats import norm

from pipelines.core.errors import ConfigError
from pipelines.data import corrupt
from pipelines.evaluation import uncertainty


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


def _with_visual(recordings, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{**r, "visual": rng.normal(size=(len(r["valence"]), dim)).astype(np.float32)} for r in recordings]


def test_corrupted_copies_follow_the_clean_recordings_with_their_own_blocks():
    recordings = _with_visual(_recordings([0.1, 0.2], n=200))
    specs = [corrupt.parse_corruption("visual:0.5:dropout"), corrupt.parse_corruption("visual:0.25:frozen")]
    out = uncertainty.with_corrupted_copies(recordings, specs)
    assert len(out) == 6
    for clean, same in zip(recordings, out[:2]):
        assert same is clean and "visual_corrupted_eval" not in same
    for k, fraction in ((0, 0.5), (1, 0.25)):
        for clean, copy in zip(recordings, out[2 + 2 * k : 4 + 2 * k]):
            flags = copy["visual_corrupted_eval"]
            assert flags.sum() == round(fraction * len(flags))
            np.testing.assert_array_equal(copy["visual"][~flags], clean["visual"][~flags])
            assert not np.allclose(copy["visual"][flags], clean["visual"][flags])
            np.testing.assert_array_equal(copy["valence"], clean["valence"])  # labels untouched
    # dropout: the recording's mean frame; its blocks are not the evaluator's (seed 0) blocks.
    first = out[2]
    np.testing.assert_allclose(
        first["visual"][first["visual_corrupted_eval"]],
        np.broadcast_to(recordings[0]["visual"].mean(0), (100, 3)),
        rtol=1e-5,
    )
    evaluator = corrupt.corrupt_recordings(recordings, "visual", 0.5, mode="dropout", seed=0)
    assert not np.array_equal(evaluator[0]["visual_corrupted_eval"], first["visual_corrupted_eval"])


def test_a_fit_with_corrupted_copies_records_its_specs_and_counts_their_frames(tmp_path):
    recordings = _with_visual(_recordings([0.1, 0.2], n=200))
    specs = ["visual:0.5:dropout"]
    fitted = uncertainty.with_corrupted_copies(recordings, [corrupt.parse_corruption(s) for s in specs])
    calibration = uncertainty.fit_calibration(fitted, fit_corruptions=specs)
    assert calibration.maps["av_valence"]["num_frames"] == 800
    calibration.save(tmp_path)
    assert uncertainty.Calibration.load(tmp_path).fit_corruptions == specs
    assert uncertainty.fit_calibration(recordings).fit_corruptions is None


@pytest.mark.parametrize(
    "spec, message",
    [
        ("visual", "takes MODALITY:FRACTION[:MODE]"),
        ("visual:0.5:dropout:x", "takes MODALITY:FRACTION[:MODE]"),
        ("face:0.5", "modality must be audio or visual"),
        ("visual:1.5", "fraction must be in [0, 1]"),
        ("visual:0.5:blur", "mode must be one of noise, zeros, swap, frozen, drift, desync, dropout"),
        ("visual:0.5:face_mask", "mode must be one of"),
    ],
)
def test_bad_corruption_specs_name_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        corrupt.parse_corruption(spec)
