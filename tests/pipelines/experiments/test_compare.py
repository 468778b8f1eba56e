"""Tests of `python -m pipelines.compare`: per-recording CCC and paired t-tests against independent references."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pipelines.core.errors import ConfigError, DataError
from pipelines.experiments import compare
from tests.pipelines import evaluation_helpers as helpers


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Three regression runs on the same artefacts: 2 epochs, and the 1-epoch ablation variants."""
    regression = helpers.tiny_run(tmp_path_factory, "regression")
    ablation_dir, _ = helpers.tiny_ablation(tmp_path_factory)
    return [regression] + [ablation_dir / f"{name}_seed0" for name in helpers.ABLATION_VARIANTS]


def _per_recording_ccc(run_dir: Path, partition: str, dims):
    """Mean CCC over `dims` per recording, from the AVEC CSVs and the corpus's own label files."""
    config = json.loads((run_dir / "config.json").read_text())
    manifest = json.loads((Path(config["runtime"]["artifact_dir"]) / "manifest.json").read_text())
    labels_dir = Path(manifest["corpus_root"]) / "labels"
    values = {}
    for path in sorted((run_dir / "predictions" / partition).glob("*.csv")):
        rows = list(csv.reader(open(path), delimiter=";"))
        predicted = np.array([[float(v) for v in row[2:4]] for row in rows[1:]])
        gold = helpers.read_avec_labels(labels_dir / path.name)
        column = {"arousal": 0, "valence": 1}
        values[path.stem] = np.mean([helpers.numpy_ccc(gold[d], predicted[:, column[d]]) for d in dims])
    return values


@pytest.mark.slow
@pytest.mark.parametrize("metric, dims", [("ccc_mean", ("valence", "arousal")), ("ccc_arousal", ("arousal",))])
def test_paired_t_tests_match_scipy_on_independent_per_recording_ccc(runs, metric, dims, tmp_path, capsys):
    output = tmp_path / "comparison.json"
    report = compare.run([str(r) for r in runs], "test", metric, output=output)
    printed = capsys.readouterr().out
    assert "paired t-tests" in printed and metric in printed
    assert json.loads(output.read_text())["metric"] == metric

    reference = {run.name: _per_recording_ccc(run, "test", dims) for run in runs}
    names = sorted(reference[runs[0].name])
    assert len(names) == 2
    for entry in report["runs"]:
        assert sorted(entry["per_recording"]) == names
        for name in names:
            assert entry["per_recording"][name] == pytest.approx(reference[entry["label"]][name], abs=1e-5)
        metrics = json.loads((Path(entry["run_dir"]) / "metrics.json").read_text())
        assert entry["figures"] == metrics["test"]["av"]

    assert [(t["a"], t["b"]) for t in report["tests"]] == [
        (runs[0].name, runs[1].name),
        (runs[0].name, runs[2].name),
        (runs[1].name, runs[2].name),
    ]
    for test in report["tests"]:
        a = [reference[test["a"]][n] for n in names]
        b = [reference[test["b"]][n] for n in names]
        expected = stats.ttest_rel(a, b)
        assert test["n"] == 2
        assert test["t"] == pytest.approx(expected.statistic, rel=1e-3)
        assert test["p"] == pytest.approx(expected.pvalue, rel=1e-3)
        assert test["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-5)


def test_paired_test_of_constant_differences_is_undefined():
    result = compare.paired_test([0.5, 1.5, 2.5], [0.25, 1.25, 2.25])  # exactly representable differences
    assert np.isnan(result["t"]) and np.isnan(result["p"]) and result["mean_difference"] == 0.25
    result = compare.paired_test([0.3, 0.6], [0.3, 0.6])
    assert np.isnan(result["t"]) and result["mean_difference"] == 0.0 and result["n"] == 2
    assert np.isnan(compare.paired_test([0.4], [0.1])["t"])
    result = compare.paired_test([0.5, 0.1, 0.9, 0.4], [0.2, 0.3, 0.1, 0.0])
    expected = stats.ttest_rel([0.5, 0.1, 0.9, 0.4], [0.2, 0.3, 0.1, 0.0])
    assert result["t"] == pytest.approx(expected.statistic) and result["p"] == pytest.approx(expected.pvalue)


def _copy_run(run_dir: Path, target: Path, **runtime) -> Path:
    target.mkdir()
    for name in ("config.json", "metrics.json"):
        shutil.copy(run_dir / name, target / name)
    config = json.loads((target / "config.json").read_text())
    config["runtime"].update(runtime)
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.slow
def test_runs_on_other_artefacts_or_partitions_are_refused(runs, tmp_path):
    config = json.loads((runs[0] / "config.json").read_text())
    manifest = json.loads((Path(config["runtime"]["artifact_dir"]) / "manifest.json").read_text())
    other = tmp_path / "other_artifacts"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({**manifest, "fingerprint": "something else"}))
    moved = _copy_run(runs[0], tmp_path / "moved", artifact_dir=str(other))
    with pytest.raises(ConfigError, match="different data artefacts"):
        compare.run([runs[0], moved], "devel", verbose=False)

    with pytest.raises(ConfigError, match="no scores for partition 'train'"):
        compare.run(runs[:2], "train", verbose=False)
    with pytest.raises(ConfigError, match="ccc_mean, ccc_valence, ccc_arousal"):
        compare.run(runs[:2], "devel", "f1_macro", verbose=False)

    no_predictions = _copy_run(runs[1], tmp_path / "no_predictions")
    with pytest.raises(DataError, match="no predictions for partition 'devel'"):
        compare.run([runs[0], no_predictions], "devel", verbose=False)

    classification = _copy_run(runs[1], tmp_path / "classification")
    config = json.loads((classification / "config.json").read_text())
    (classification / "config.json").write_text(json.dumps({**config, "task": "classification"}))
    with pytest.raises(ConfigError, match="cannot compare a regression run"):
        compare.run([runs[0], classification], "devel", verbose=False)

    result = helpers.cli("pipelines.compare", [runs[0], runs[0]])
    helpers.assert_one_line_error(result, "listed twice")


def test_cli_errors_are_one_line(tmp_path):
    result = helpers.cli("pipelines.compare", [tmp_path / "a"])
    helpers.assert_one_line_error(result, "at least two run directories")
    result = helpers.cli("pipelines.compare", [tmp_path / "a", tmp_path / "b"])
    helpers.assert_one_line_error(result, "run directory not found")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text("{}")
    result = helpers.cli("pipelines.compare", [tmp_path / "a", tmp_path / "b"])
    helpers.assert_one_line_error(result, "has not finished", "metrics.json")
