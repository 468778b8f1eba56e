"""Reliability-aware conformal intervals (pipelines/evaluation/conformal.py) against NumPy references, and the
trainer's fallback when a run is too small for them."""

import json
import math

import numpy as np
import pytest

from pipelines.core.errors import ConfigError, DataError
from pipelines.evaluation import conformal


def _recording(rng, n, damaged_fraction=0.0, noise=0.1):
    """One recording's outputs and labels: the visual branch is wrong on the damaged frames, the fused
    output follows it there, and the error grows with the branches' disagreement."""
    y = {d: np.tanh(rng.standard_normal(n)) for d in conformal.DIMENSIONS}
    damaged = np.zeros(n, bool)
    damaged[: int(round(damaged_fraction * n))] = True
    outputs = {}
    for d in conformal.DIMENSIONS:
        audio = y[d] + noise * rng.standard_normal(n)
        visual = y[d] + noise * rng.standard_normal(n) + np.where(damaged, rng.normal(0, 0.6, n), 0.0)
        outputs[f"audio_{d}"] = audio
        outputs[f"visual_{d}"] = visual
        outputs[d] = 0.5 * (audio + visual)
    outputs["visual_weight"] = np.full(n, 0.5) + 0.05 * rng.standard_normal(n)
    outputs["audio_weight"] = 1.0 - outputs["visual_weight"]
    outputs["audio_sigma_norm"] = np.exp(0.1 * rng.standard_normal(n))
    outputs["visual_sigma_norm"] = np.exp(0.1 * rng.standard_normal(n))
    return {"name": "r", "outputs": outputs, **y}


def _recordings(seed, count, n=200, damaged_fraction=0.3):
    rng = np.random.default_rng(seed)
    return [_recording(rng, n, damaged_fraction) for _ in range(count)]


def reference_quantile(scores, level):
    """Split-conformal quantile: the ceil((n + 1) level)-th smallest score (inf beyond n)."""
    scores = np.sort(np.asarray(scores, np.float64))
    k = math.ceil((scores.size + 1) * level)
    return np.inf if k > scores.size else scores[k - 1]


@pytest.mark.parametrize("n", [9, 10, 19, 57, 100, 1001])
@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_conformal_quantile_matches_the_split_conformal_rank(n, level):
    scores = np.random.default_rng(n).exponential(size=n)
    assert conformal.conformal_quantile(scores, level) == reference_quantile(scores, level)


def test_standard_fit_equals_an_independent_split_conformal_interval():
    calibration_set = _recordings(0, 4)
    fitted = conformal.fit(calibration_set, normalized=False, num_bins=1)
    for dim in conformal.DIMENSIONS:
        errors = np.concatenate([np.abs(r[dim] - r["outputs"][dim]) for r in calibration_set])
        expected = reference_quantile(errors, 0.9)
        half = fitted.half_widths(calibration_set[0]["outputs"], 0.9)[f"av_{dim}"]
        np.testing.assert_allclose(half, expected, rtol=0, atol=0)


def test_outputs_without_signals_fit_one_bin_of_standard_split_conformal():
    # A single-modality model gives only its prediction: no signal, a constant difficulty, one bin.
    calibration_set = [
        {**r, "outputs": {d: r["outputs"][d] for d in conformal.DIMENSIONS}} for r in _recordings(8, 4)
    ]
    fitted = conformal.fit(calibration_set, num_bins=3)
    assert sorted(fitted.keys) == ["av_arousal", "av_valence"]
    for dim in conformal.DIMENSIONS:
        assert fitted.keys[f"av_{dim}"]["edges"] == []
        errors = np.concatenate([np.abs(r[dim] - r["outputs"][dim]) for r in calibration_set])
        half = fitted.half_widths(calibration_set[0]["outputs"], 0.9)[f"av_{dim}"]
        np.testing.assert_allclose(half, reference_quantile(errors, 0.9), rtol=1e-12)


def test_normalised_mondrian_fit_matches_the_reference_per_bin():
    calibration_set = _recordings(1, 5)
    fitted = conformal.fit(calibration_set, normalized=True, num_bins=3)
    key = "av_valence"
    outputs = [r["outputs"] for r in calibration_set]
    s = np.concatenate([fitted.difficulty(o, key) for o in outputs])
    errors = np.concatenate([np.abs(r["valence"] - r["outputs"]["valence"]) for r in calibration_set])
    bins = fitted.bins(s, key)
    assert sorted(set(bins.tolist())) == [0, 1, 2]
    for level_index, level in enumerate(fitted.levels):
        for j in range(3):
            expected = reference_quantile(errors[bins == j] / s[bins == j], level)
            assert fitted.keys[key]["quantiles"][level_index][j] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("normalized", [False, True])
def test_every_mondrian_bin_reaches_its_level_on_exchangeable_data(normalized):
    # Calibration and test drawn from the same distribution: each bin's coverage is near 0.9.
    calibration_set = _recordings(2, 20, n=250)
    test = _recordings(3, 20, n=250)
    fitted = conformal.fit(calibration_set, normalized=normalized, num_bins=4)
    key = "av_arousal"
    covered, bins = [], []
    for r in test:
        half = fitted.half_widths(r["outputs"], 0.9)[key]
        covered.append(np.abs(r["arousal"] - r["outputs"]["arousal"]) <= half)
        bins.append(fitted.bins(fitted.difficulty(r["outputs"], key), key))
    covered, bins = np.concatenate(covered), np.concatenate(bins)
    for j in range(4):
        assert np.sum(bins == j) > 300
        assert 0.86 <= covered[bins == j].mean() <= 0.94, (j, covered[bins == j].mean())


def test_intervals_widen_where_the_branches_disagree():
    fitted = conformal.fit(_recordings(4, 6), normalized=True, num_bins=3)
    r = _recordings(5, 1, n=400, damaged_fraction=0.5)[0]
    half = fitted.half_widths(r["outputs"])["av_valence"]
    assert half[:200].mean() > 1.5 * half[200:].mean()


def test_bounds_and_std_are_consistent():
    fitted = conformal.fit(_recordings(6, 3))
    outputs = _recordings(7, 1)[0]["outputs"]
    bounds = fitted.bounds(outputs, 0.9)
    for prefix in ("", "audio_", "visual_"):
        for dim in conformal.DIMENSIONS:
            name = f"{prefix}{dim}"
            half = (bounds[f"{name}_upper"] - bounds[f"{name}_lower"]) / 2
            np.testing.assert_allclose((bounds[f"{name}_upper"] + bounds[f"{name}_lower"]) / 2, outputs[name])
            np.testing.assert_allclose(bounds[f"{name}_std"] * 1.6448536269514722, half, rtol=1e-12)
    wider = fitted.bounds(outputs, 0.95)
    assert np.all(wider["valence_upper"] - wider["valence_lower"] >= bounds["valence_upper"] - bounds["valence_lower"])


def test_json_round_trip_is_exact():
    fitted = conformal.fit(_recordings(8, 3), num_bins=3)
    text = json.dumps(fitted.to_json())
    again = conformal.ConformalCalibration.from_json(json.loads(text))
    assert again.to_json() == fitted.to_json()
    outputs = _recordings(9, 1)[0]["outputs"]
    a, b = fitted.bounds(outputs), again.bounds(outputs)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_presence_flags_and_missing_signals():
    recordings = _recordings(10, 3)
    for r in recordings:
        r["visual_present"] = (np.arange(len(r["valence"])) % 5 != 0).astype(np.float32)
    fitted = conformal.fit(recordings)
    assert "visual_absent" in fitted.signals["valence"]["names"]
    assert "audio_absent" not in fitted.signals["valence"]["names"]  # constant: left out
    outputs = dict(_recordings(11, 1)[0]["outputs"])
    fitted.bounds(outputs)  # no flags: every frame present
    del outputs["visual_sigma_norm"]
    with pytest.raises(DataError, match="'visual_sigma_norm'"):
        fitted.bounds(outputs)


def test_bad_inputs_raise_one_line_errors():
    recordings = _recordings(12, 2)
    with pytest.raises(ConfigError, match="level"):
        conformal.fit(recordings, levels=(0.9, 1.2))
    with pytest.raises(ConfigError, match="num_bins"):
        conformal.fit(recordings, num_bins=0)
    with pytest.raises(ConfigError, match="'bogus'"):
        conformal.fit(recordings, names=["bogus"])
    with pytest.raises(DataError, match="no labelled"):
        conformal.fit([{**recordings[0], "valence": None}])
    broken = [
        {**r, "outputs": {**r["outputs"], "audio_valence": r["outputs"]["audio_valence"][:-1]}} for r in recordings
    ]
    with pytest.raises(DataError, match="'audio_valence'"):
        conformal.fit(broken)
    nan = {**recordings[0], "outputs": {**recordings[0]["outputs"], "visual_weight": np.full(200, np.nan)}}
    with pytest.raises(DataError, match="'visual_weight'"):
        conformal.fit([nan])
    fitted = conformal.fit(recordings)
    with pytest.raises(ConfigError, match="0.99"):
        fitted.bounds(recordings[0]["outputs"], 0.99)
    with pytest.raises(DataError, match="format_version"):
        conformal.ConformalCalibration.from_json({"format_version": 99})
    with pytest.raises(DataError) as missing:
        fitted.bounds({"valence": np.zeros(3)})
    assert "\n" not in str(missing.value)


@pytest.mark.parametrize("group_level", [1.0, 2 / 3])
def test_grouped_quantile_is_the_quantile_of_the_groups_quantiles(group_level):
    calibration_set = _recordings(13, 6) + _recordings(14, 6, damaged_fraction=0.8)
    groups = [f"clean/{i}" for i in range(6)] + [f"damaged/{i}" for i in range(6)]
    fitted = conformal.fit(calibration_set, num_bins=1, groups=groups, group_level=group_level, min_group_frames=50)
    assert fitted.num_groups == 12 and fitted.group_level == group_level
    per_group = [reference_quantile(np.abs(r["valence"] - r["outputs"]["valence"]), 0.9) for r in calibration_set]
    expected = max(per_group) if group_level == 1.0 else reference_quantile(per_group, group_level)
    assert fitted.keys["av_valence"]["quantiles"][fitted.levels.index(0.9)][0] == expected
    pooled = conformal.fit(calibration_set, num_bins=1)
    assert expected > pooled.keys["av_valence"]["quantiles"][2][0]
    with pytest.raises(ConfigError, match="groups"):
        conformal.fit(calibration_set, groups=groups[:-1])


def test_unit_groups_follow_the_order_of_the_corrupted_copies():
    recordings = [{"name": "a"}, {"name": "b"}]
    assert conformal.unit_groups(recordings, ["visual:0.5:swap"]) == [
        "clean/a",
        "clean/b",
        "visual:0.5:swap/a",
        "visual:0.5:swap/b",
    ]


def test_too_few_frames_per_bin_is_a_data_error():
    with pytest.raises(DataError, match="too few calibration frames for av_valence"):
        conformal.fit(_recordings(15, 1, n=12), num_bins=3)


def test_a_run_too_small_for_the_fit_keeps_the_isotonic_intervals_and_says_so(tmp_path, monkeypatch, capsys):
    # A validation partition of 4 frames: the isotonic map is fitted, the conformal fit is refused, and
    # the run says in one line (even under --quiet) that its intervals are the isotonic ones.
    from pipelines.components import input_pipeline
    from pipelines.evaluation import intervals
    from tests.pipelines import evaluation_helpers

    small = _recordings(15, 1, n=4)
    for recording in small:
        recording["outputs"]["audio_weight"] = 1.0 - recording["outputs"]["visual_weight"]
    monkeypatch.setattr(input_pipeline, "iter_recordings", lambda artifact_dir, partition: iter(small))
    monkeypatch.setattr(intervals, "calibration_predictions", lambda model, rec, specs: small * (1 + len(specs)))
    isotonic, fitted = intervals.fit_for_run(tmp_path, None, evaluation_helpers.tiny_config(), tmp_path, verbose=False)
    assert fitted is None and isotonic is not None
    assert not (tmp_path / conformal.CALIBRATION_FILE).exists()
    assert (tmp_path / "uncertainty_calibration.json").is_file()
    assert capsys.readouterr().out.splitlines() == [
        "note: no conformal intervals for this run (too few calibration frames for av_valence in one of its bins; "
        "use fewer bins); its intervals are the isotonic ones"
    ]
