"""Tests of `python -m pipelines.evaluate`: every figure against a NumPy reference on the model's own outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from pipelines.data import corrupt
from pipelines.evaluation import evaluate
from tests.pipelines import evaluation_helpers as helpers

# The evaluator's predictions and the test's own are the same model run on differently padded batches,
# equal to float32 rounding (~1e-7); a rank correlation over a few hundred frames moves by ~1e-6 to 1e-5
# when that rounding swaps two nearly tied frames. The formula itself is checked exactly
# (`tests/cold_keras/metrics/test_statistics.py`).
RANK_TOLERANCE = 1e-4

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def classification_run(tmp_path_factory):
    return helpers.tiny_run(tmp_path_factory, "classification")


@pytest.fixture(scope="session")
def clean_report(regression_run):
    return evaluate.run(regression_run, "devel", plot_first=2, verbose=False)


@pytest.fixture(scope="session")
def corrupted_report(regression_run):
    return evaluate.run(regression_run, "devel", "visual:0.5", "noise", plot_recordings="Devel_SY_02", verbose=False)


# --------------------------------------------------------------------------- corruption


def _runs(mask):
    padded = np.concatenate([[False], mask, [False]]).astype(int)
    return int((np.diff(padded) == 1).sum())


@pytest.mark.parametrize("mode", corrupt.FEATURE_MODES)
@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_corruption_changes_only_the_chosen_modality_in_consecutive_blocks(mode, modality):
    rng = np.random.default_rng(0)
    recordings = [
        {
            "name": f"r{i}",
            "audio": rng.normal(size=(n, 3)).astype(np.float32),
            "visual": rng.normal(size=(n, 4)).astype(np.float32),
        }
        for i, n in enumerate((101, 64, 37))
    ]
    out = corrupt.corrupt_recordings(recordings, modality, 0.3, mode=mode, seed=5)
    other = "visual" if modality == "audio" else "audio"
    for before, after in zip(recordings, out):
        mask = after[f"{modality}_corrupted_eval"]
        n = len(before[modality])
        assert mask.dtype == bool and mask.shape == (n,)
        assert mask.sum() == round(0.3 * n)
        assert 1 <= _runs(mask) <= 4
        np.testing.assert_array_equal(after[other], before[other])
        np.testing.assert_array_equal(after[modality][~mask], before[modality][~mask])
        changed = np.any(after[modality] != before[modality], axis=1)
        np.testing.assert_array_equal(changed, mask)
        if mode == "zeros":
            assert np.all(after[modality][mask] == 0)
    # The same seed gives the same blocks; the input arrays are left alone.
    again = corrupt.corrupt_recordings(recordings, modality, 0.3, mode=mode, seed=5)
    np.testing.assert_array_equal(again[0][modality], out[0][modality])
    assert f"{modality}_corrupted_eval" not in recordings[0]


def test_zero_fraction_corrupts_nothing():
    recordings = [{"audio": np.ones((10, 2), np.float32), "visual": np.ones((10, 2), np.float32)}]
    out = corrupt.corrupt_recordings(recordings, "visual", 0.0)
    assert not out[0]["visual_corrupted_eval"].any()
    np.testing.assert_array_equal(out[0]["visual"], recordings[0]["visual"])


# --------------------------------------------------------------------------- regression run


def _references(recordings, outputs):
    """Concatenated CCC, per-recording CCC, Spearman and weight figures, all in NumPy."""
    ref = {"scores": {}, "per_recording": [], "uncertainty": {}, "weights": {}}
    for branch, prefix in (("av", ""), ("audio", "audio_"), ("visual", "visual_")):
        row = {}
        for dim in ("valence", "arousal"):
            row[f"ccc_{dim}"] = helpers.numpy_ccc(
                np.concatenate([r[dim] for r in recordings]), np.concatenate([o[prefix + dim] for o in outputs])
            )
        row["ccc_mean"] = (row["ccc_valence"] + row["ccc_arousal"]) / 2
        ref["scores"][branch] = row
    for recording, output in zip(recordings, outputs):
        row = {}
        for branch, prefix in (("av", ""), ("audio", "audio_"), ("visual", "visual_")):
            values = [helpers.numpy_ccc(recording[d], output[prefix + d]) for d in ("valence", "arousal")]
            row[f"{branch}_ccc_valence"], row[f"{branch}_ccc_arousal"] = values
            row[f"{branch}_ccc_mean"] = np.mean(values)
        ref["per_recording"].append(row)
    for modality in ("audio", "visual"):
        inverse = np.concatenate([1.0 / o[f"{modality}_sigma_norm"] for o in outputs])
        errors = np.concatenate(
            [
                ((r["valence"] - o[f"{modality}_valence"]) ** 2 + (r["arousal"] - o[f"{modality}_arousal"]) ** 2) / 2
                for r, o in zip(recordings, outputs)
            ]
        )
        weights = np.concatenate([o[f"{modality}_weight"] for o in outputs])
        ref["uncertainty"][modality] = (
            helpers.rank_correlation(inverse, errors),
            helpers.rank_correlation(weights, errors),
        )
        ref["weights"][modality] = weights
    return ref


def _check_weights(entry, weights, corrupted, clean):
    assert entry["num_corrupted"] == corrupted.sum() and entry["num_clean"] == clean.sum()
    assert entry["mean_weight_corrupted"] == pytest.approx(weights[corrupted].mean(), abs=1e-6)
    assert entry["mean_weight_clean"] == pytest.approx(weights[clean].mean(), abs=1e-6)
    keep = corrupted | clean
    assert entry["auc"] == pytest.approx(helpers.pairwise_auc(1.0 - weights[keep], corrupted[keep]), abs=1e-9)


@pytest.mark.slow
def test_clean_evaluation_writes_its_files(clean_report, regression_run):
    out = regression_run / "evaluation" / "devel"
    assert clean_report["output_dir"] == str(out)
    for name in (
        "report.json",
        "report.txt",
        "per_recording.csv",
        "timeline_Devel_SY_01.png",
        "timeline_Devel_SY_02.png",
    ):
        assert (out / name).is_file(), name
    for name in ("timeline_Devel_SY_01.png", "timeline_Devel_SY_02.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(clean_report))
    text = (out / "report.txt").read_text()
    assert "CCC mean" in text and "Spearman" in text and "AUC(1-w)" in text and "Devel_SY_02" in text
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_clean_evaluation_matches_numpy_references(clean_report, regression_run):
    recordings, outputs = helpers.predict(regression_run, "devel")
    ref = _references(recordings, outputs)
    for branch, row in ref["scores"].items():
        for key, value in row.items():
            assert clean_report["scores"][branch][key] == pytest.approx(value, abs=1e-5), (branch, key)
    # metrics.json was scored by the trainer on the same partition with the same model.
    metrics = json.loads((regression_run / "metrics.json").read_text())
    assert clean_report["scores"]["av"]["ccc_mean"] == pytest.approx(metrics["devel"]["av"]["ccc_mean"], abs=1e-5)

    rows = list(csv.DictReader(open(regression_run / "evaluation" / "devel" / "per_recording.csv")))
    assert [row["name"] for row in rows] == [r["name"] for r in recordings]
    for row, expected in zip(rows, ref["per_recording"]):
        assert int(row["num_frames"]) == 240
        for key, value in expected.items():
            assert float(row[key]) == pytest.approx(value, abs=1e-5), key

    for modality, (rho_sigma, rho_weight) in ref["uncertainty"].items():
        entry = clean_report["uncertainty"][modality]
        assert entry["spearman_inverse_sigma_vs_error"] == pytest.approx(rho_sigma, abs=RANK_TOLERANCE)
        assert entry["spearman_weight_vs_error"] == pytest.approx(rho_weight, abs=RANK_TOLERANCE)
        assert entry["num_frames"] == 480
        sign = "positive" if rho_sigma > 0 else "negative"
        assert entry["meaning"].startswith(sign)
        agrees = rho_sigma > 0  # informativeness convention: 1/||sigma|| should rise with the error
        assert ("; as the" in entry["meaning"]) == agrees

    # Synthetic ground truth, no evaluator corruption: clean frames are the other frames.
    assert set(clean_report["fusion_weights"]) == {"corpus"}
    for modality in ("audio", "visual"):
        flags = np.concatenate([r[f"{modality}_corrupted"] for r in recordings])
        _check_weights(clean_report["fusion_weights"]["corpus"][modality], ref["weights"][modality], flags, ~flags)
    assert clean_report["corruption"] is None and clean_report["scores_clean"] == clean_report["scores"]


@pytest.mark.slow
def test_corrupted_evaluation_matches_numpy_references(corrupted_report, clean_report, regression_run):
    out = regression_run / "evaluation" / "devel_corrupt-visual-0.5-noise"
    assert corrupted_report["output_dir"] == str(out)
    assert (out / "timeline_Devel_SY_02.png").read_bytes().startswith(PNG)
    assert not (out / "timeline_Devel_SY_01.png").exists()
    assert "robustness" in (out / "report.txt").read_text()

    clean_recordings, _ = helpers.predict(regression_run, "devel")
    corrupted = corrupt.corrupt_recordings(clean_recordings, "visual", 0.5, mode="noise", seed=0)
    recordings, outputs = helpers.predict(regression_run, "devel", corrupted)
    ref = _references(recordings, outputs)
    assert corrupted_report["corruption"]["num_frames_corrupted"] == 2 * round(0.5 * 240)
    for branch, row in ref["scores"].items():
        for key, value in row.items():
            assert corrupted_report["scores"][branch][key] == pytest.approx(value, abs=1e-5), (branch, key)
    assert corrupted_report["scores_clean"] == clean_report["scores"]
    # The audio branch never sees the visual input.
    assert corrupted_report["scores"]["audio"]["ccc_mean"] == pytest.approx(
        clean_report["scores"]["audio"]["ccc_mean"], abs=1e-6
    )
    assert corrupted_report["scores"]["av"]["ccc_mean"] != clean_report["scores"]["av"]["ccc_mean"]
    for modality, (rho_sigma, _) in ref["uncertainty"].items():
        assert corrupted_report["uncertainty"][modality]["spearman_inverse_sigma_vs_error"] == pytest.approx(
            rho_sigma, abs=RANK_TOLERANCE
        )

    weights = ref["weights"]["visual"]
    mine = np.concatenate([r["visual_corrupted_eval"] for r in recordings])
    corpus = np.concatenate([r["visual_corrupted"] for r in recordings])
    _check_weights(corrupted_report["fusion_weights"]["evaluator"]["visual"], weights, mine, ~mine & ~corpus)
    _check_weights(corrupted_report["fusion_weights"]["corpus"]["visual"], weights, corpus, ~mine & ~corpus)
    assert "audio" not in corrupted_report["fusion_weights"]["evaluator"]


# --------------------------------------------------------------------------- classification run


def _macro_f1(labels, predicted):
    scores = []
    for c in range(3):
        tp = np.sum((labels == c) & (predicted == c))
        support, count = np.sum(labels == c), np.sum(predicted == c)
        if support + count:
            scores.append(2 * tp / (support + count))
    return float(np.mean(scores))


@pytest.mark.slow
def test_classification_calibration_uses_the_validation_temperature(classification_run):
    from cold_keras import metrics as cmetrics

    report = evaluate.run(classification_run, "test", plot_first=0, verbose=False)
    out = classification_run / "evaluation" / "test"
    assert not list(out.glob("timeline_*.png"))
    devel_recordings, devel_outputs = helpers.predict(classification_run, "devel")
    recordings, outputs = helpers.predict(classification_run, "test")
    assert report["temperatures"]["fitted_on"] == "devel"
    for branch, prefix in (("av", ""), ("audio", "audio_"), ("visual", "visual_")):
        for dim in ("valence", "arousal"):
            devel_logits = np.concatenate([o[prefix + dim] for o in devel_outputs])
            devel_labels = helpers.bins_of(np.concatenate([r[dim] for r in devel_recordings]))
            temperature = cmetrics.temperature_scale(devel_logits, devel_labels)
            assert report["temperatures"][f"{branch}_{dim}"] == pytest.approx(temperature)

            logits = np.concatenate([o[prefix + dim] for o in outputs])
            labels = helpers.bins_of(np.concatenate([r[dim] for r in recordings]))
            row = report["scores"][branch]
            assert row[f"f1_{dim}"] == pytest.approx(_macro_f1(labels, logits.argmax(-1)), abs=1e-9)
            assert row[f"ece_{dim}"] == pytest.approx(helpers.numpy_ece(helpers.softmax(logits), labels), abs=1e-6)
            expected_ts = helpers.numpy_ece(helpers.softmax(logits / temperature), labels)
            assert row[f"ece_ts_{dim}"] == pytest.approx(expected_ts, abs=1e-6)
            entry = report["reliability"][f"{branch}_{dim}"]
            assert entry["after"]["ece"] == pytest.approx(expected_ts, abs=1e-6)
            assert sum(entry["before"]["count"]) == len(labels)
            assert (out / f"reliability_{branch}_{dim}.png").read_bytes().startswith(PNG)

    for modality in ("audio", "visual"):
        inverse = np.concatenate([1.0 / o[f"{modality}_sigma_norm"] for o in outputs])
        errors = []
        for recording, output in zip(recordings, outputs):
            per_dim = []
            for dim in ("valence", "arousal"):
                probs = helpers.softmax(output[f"{modality}_{dim}"])
                per_dim.append(-np.log(probs[np.arange(len(probs)), helpers.bins_of(recording[dim])]))
            errors.append(np.mean(per_dim, axis=0))
        rho = helpers.rank_correlation(inverse, np.concatenate(errors))
        assert report["uncertainty"][modality]["spearman_inverse_sigma_vs_error"] == pytest.approx(
            rho, abs=RANK_TOLERANCE
        )
        assert report["uncertainty"][modality]["error"] == "cross-entropy"

    rows = list(csv.DictReader(open(out / "per_recording.csv")))
    for row, recording, output in zip(rows, recordings, outputs):
        f1 = [_macro_f1(helpers.bins_of(recording[d]), output[d].argmax(-1)) for d in ("valence", "arousal")]
        assert float(row["av_f1_macro"]) == pytest.approx(np.mean(f1), abs=1e-5)


# --------------------------------------------------------------------------- errors


@pytest.fixture
def fake_run(tmp_path):
    """A run directory whose data has a labelled devel and an unlabelled test partition."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "manifest.json").write_text(
        json.dumps({"partitions": {"devel": {"labelled": True}, "test": {"labelled": False}}})
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(
        json.dumps(
            {
                "task": "regression",
                "model": {"name": "cold_fusion"},
                "training": {"validation_partition": "devel"},
                "runtime": {"artifact_dir": str(artifacts)},
            }
        )
    )
    (run_dir / "model.keras").write_bytes(b"")
    return run_dir


def test_cli_errors_are_one_line(fake_run, tmp_path):
    result = helpers.cli("pipelines.evaluate", ["--run-dir", tmp_path / "nowhere"])
    helpers.assert_one_line_error(result, "run directory not found")

    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((fake_run / "config.json").read_text())
    result = helpers.cli("pipelines.evaluate", ["--run-dir", unfinished])
    helpers.assert_one_line_error(result, "has not finished", "model.keras")

    result = helpers.cli("pipelines.evaluate", ["--run-dir", fake_run, "--partition", "dev"])
    helpers.assert_one_line_error(result, "unknown partition 'dev'", "devel, test")

    result = helpers.cli("pipelines.evaluate", ["--run-dir", fake_run, "--partition", "test"])
    helpers.assert_one_line_error(result, "manifest.json", "'test' has no labels")

    result = helpers.cli("pipelines.evaluate", ["--run-dir", fake_run, "--corrupt", "visual:1.5"])
    helpers.assert_one_line_error(result, "fraction must be in [0, 1]")


def test_run_refuses_a_missing_artifact_dir(fake_run):
    config = json.loads((fake_run / "config.json").read_text())
    config["runtime"]["artifact_dir"] = str(fake_run / "gone")
    (fake_run / "config.json").write_text(json.dumps(config))
    from pipelines.core.errors import DataError

    with pytest.raises(DataError, match="data artefacts"):
        evaluate.run(fake_run)


def test_output_folder_names():
    assert evaluate.output_folder_name("devel") == "devel"
    assert evaluate.output_folder_name("test", ("visual", 0.5, "noise")) == "test_corrupt-visual-0.5-noise"
    assert evaluate.output_folder_name("devel", ("audio", 1.0, "swap")) == "devel_corrupt-audio-1-swap"
