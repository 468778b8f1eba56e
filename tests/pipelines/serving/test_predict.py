"""Tests of `pipelines.predict`: run vs SavedModel, AVEC format, resuming, errors, extra columns."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines import predict as predict_command
from pipelines.datasets.avec import open_avec
from pipelines.serving import prediction_files, prediction_inputs, predictors


@pytest.fixture(scope="session")
def corpus_dir(run_dir, tmp_path_factory):
    """The run's synthetic corpus with the Test label files removed (a submission setting)."""
    source = next(Path(run_dir).parent.glob("cache/synthetic/*/synthetic.json")).parent
    target = tmp_path_factory.mktemp("unlabelled") / "corpus"
    shutil.copytree(source, target)
    removed = sorted((target / "labels").glob("Test_*.csv"))
    assert removed
    for path in removed:
        path.unlink()
    return target


INTERVAL_COLUMNS = ["arousal_lower", "arousal_upper", "valence_lower", "valence_upper"]
PRESENCE_COLUMNS = ["audio_present", "visual_present"]


def read_rows(path: Path):
    rows = list(csv.reader(open(path), delimiter=";"))
    return rows[0], rows[1:]


def numbers(rows):
    return np.array([[float(cell) for cell in row[1:]] for row in rows])


def feature_timestamps(path: Path):
    rows = list(csv.reader(open(path), delimiter=";"))
    return np.array([float(row[1]) for row in rows[1:]])


def assert_half_widths_are_quantiles(half, run_dir, dim, level):
    """Every half-width is one of the conformal quantiles of the fused output at `level` (one per bin)."""
    from pipelines.evaluation import conformal

    calibration = conformal.load(run_dir)
    quantiles = np.asarray(calibration.keys[f"av_{dim}"]["quantiles"][calibration.levels.index(level)])
    assert np.min(np.abs(np.asarray(half)[:, None] - quantiles[None]), axis=1).max() < 3e-6


def predict_cli(capsys, *args):
    """Runs the command in this process; returns (exit code or None, stdout, stderr)."""
    code = None
    try:
        predict_command.main([*map(str, args), "--quiet"])
    except SystemExit as error:
        code = error.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_run_and_saved_model_write_the_same_avec_submission(run_dir, exported, corpus_dir, tmp_path, capsys):
    from_run, from_export = tmp_path / "run", tmp_path / "export"
    code, out, err = predict_cli(capsys, "--run-dir", run_dir, "--data-dir", corpus_dir, "--output-dir", from_run)
    assert code is None, err
    code, out, err = predict_cli(
        capsys, "--saved-model", exported, "--data-dir", corpus_dir, "--output-dir", from_export
    )
    assert code is None, err
    assert "1 written" in out
    tests = sorted(p.name for p in (corpus_dir / "audio").glob("Test_*.csv"))
    for folder in (from_run, from_export):
        assert sorted(p.name for p in folder.glob("*.csv")) == tests
        assert sorted(p.name for p in (folder / "extra").glob("*.csv")) == tests
    for name in tests:
        header, rows = read_rows(from_run / name)
        assert header == ["name", "timestamp", "arousal", "valence"] + INTERVAL_COLUMNS + PRESENCE_COLUMNS
        assert {row[0] for row in rows} == {f"'{Path(name).stem}'"}
        # The trainer's conformal intervals give the 90% intervals: mu -+ the 90% quantile of the frame's bin.
        values = numbers(rows)
        for dim in ("arousal", "valence"):
            mu = values[:, header.index(dim) - 1]
            lower, upper = values[:, header.index(f"{dim}_lower") - 1], values[:, header.index(f"{dim}_upper") - 1]
            np.testing.assert_allclose(upper - mu, mu - lower, atol=3e-6)
            assert_half_widths_are_quantiles(upper - mu, run_dir, dim, 0.9)
        np.testing.assert_array_equal(values[:, -2:], 1.0)  # every frame of the synthetic test recordings present
        # No label file: the feature files' timestamps, one row per feature frame.
        np.testing.assert_allclose(numbers(rows)[:, 0], feature_timestamps(corpus_dir / "audio" / name), atol=5e-3)
        _, served = read_rows(from_export / name)
        np.testing.assert_allclose(numbers(rows), numbers(served), atol=1e-5, rtol=0)
        extra_header, extra = read_rows(from_run / "extra" / name)
        assert {
            "audio_weight",
            "visual_weight",
            "audio_sigma_norm",
            "visual_sigma_norm",
            "audio_valence",
            "visual_arousal",
        } <= set(extra_header)
        weights = numbers(extra)[:, [extra_header.index("audio_weight") - 1, extra_header.index("visual_weight") - 1]]
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        _, served_extra = read_rows(from_export / "extra" / name)
        np.testing.assert_allclose(numbers(extra), numbers(served_extra), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_labelled_partition_uses_the_label_timestamps(run_dir, corpus_dir, tmp_path, capsys):
    out_dir = tmp_path / "devel"
    code, _, err = predict_cli(
        capsys, "--run-dir", run_dir, "--data-dir", corpus_dir, "--partition", "devel", "--output-dir", out_dir
    )
    assert code is None, err
    labels = sorted((corpus_dir / "labels").glob("Devel_*.csv"))
    assert sorted(p.name for p in out_dir.glob("*.csv")) == [p.name for p in labels]
    for path in labels:
        _, rows = read_rows(out_dir / path.name)
        np.testing.assert_allclose(numbers(rows)[:, 0], feature_timestamps(path), atol=5e-3)


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_recordings(
    run_dir, corpus_dir, tmp_path, capsys, monkeypatch
):
    out_dir = tmp_path / "devel"
    calls = []
    original = predictors.KerasPredictor.__call__

    def stop_on_second(self, recording):
        calls.append(recording["name"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, recording)

    monkeypatch.setattr(predictors.KerasPredictor, "__call__", stop_on_second)
    code, _, err = predict_cli(
        capsys, "--run-dir", run_dir, "--data-dir", corpus_dir, "--partition", "devel", "--output-dir", out_dir
    )
    assert code == 130, err
    done = sorted(p.name for p in out_dir.glob("*.csv"))
    assert done == [f"{calls[0]}.csv"]
    assert not list(out_dir.rglob("*.tmp"))
    stamps = {name: (out_dir / name).stat().st_mtime_ns for name in done}

    calls.clear()
    monkeypatch.setattr(predictors.KerasPredictor, "__call__", original)
    seen = []
    monkeypatch.setattr(
        predictors.KerasPredictor,
        "__call__",
        lambda self, recording: seen.append(recording["name"]) or original(self, recording),
    )
    code, out, err = predict_cli(
        capsys, "--run-dir", run_dir, "--data-dir", corpus_dir, "--partition", "devel", "--output-dir", out_dir
    )
    assert code is None, err
    total = len(list((corpus_dir / "audio").glob("Devel_*.csv")))
    assert total >= 2
    assert f"predicted {total} recordings ({total - 1} written, 1 already done)" in out
    assert not set(seen) & {Path(name).stem for name in done}
    assert {name: (out_dir / name).stat().st_mtime_ns for name in done} == stamps
    assert len(list(out_dir.glob("*.csv"))) == total

    # Other settings in the same folder are refused, not mixed in.
    code, _, err = predict_cli(
        capsys, "--run-dir", run_dir, "--data-dir", corpus_dir, "--partition", "test", "--output-dir", out_dir
    )
    assert code == 2 and "partition" in err and str(out_dir) in err


@pytest.mark.slow
def test_dimension_mismatch_names_the_file_and_both_dimensions(run_dir, corpus_dir, tmp_path, capsys):
    data = tmp_path / "corpus"
    shutil.copytree(corpus_dir, data)
    narrow = data / "audio_narrow"
    narrow.mkdir()
    for path in (data / "audio").glob("*.csv"):
        rows = list(csv.reader(open(path), delimiter=";"))
        with open(narrow / path.name, "w", newline="") as handle:
            csv.writer(handle, delimiter=";").writerows([row[:-2] for row in rows])
    dim = len(rows[0]) - 2
    code, _, err = predict_cli(
        capsys,
        "--run-dir",
        run_dir,
        "--data-dir",
        data,
        "--audio-features",
        "audio_narrow",
        "--output-dir",
        tmp_path / "out",
    )
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: {narrow / 'Test_SY_01.csv'}")
    assert f"{dim - 2} audio features per frame, but the model takes {dim}" in line
    assert "Traceback" not in err


@pytest.mark.slow
def test_feature_only_folder_is_predicted(run_dir, corpus_dir, tmp_path, capsys):
    data = tmp_path / "features_only"
    for folder in ("audio", "visual"):
        (data / folder).mkdir(parents=True)
        for path in (corpus_dir / folder).glob("Test_*.csv"):
            shutil.copy(path, data / folder / path.name)
    code, out, err = predict_cli(
        capsys, "--run-dir", run_dir, "--dataset", "avec", "--data-dir", data, "--output-dir", tmp_path / "out"
    )
    assert code is None, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.csv")) == sorted(
        p.name for p in (data / "audio").glob("*.csv")
    )


def features_at_hop(corpus_dir: Path, target: Path, hop: float) -> Path:
    """A feature-only copy of the corpus's Test recordings with their frames `hop` seconds apart."""
    for folder in ("audio", "visual"):
        (target / folder).mkdir(parents=True)
        for path in (corpus_dir / folder).glob("Test_*.csv"):
            rows = list(csv.reader(open(path), delimiter=";"))
            for i, row in enumerate(rows[1:]):
                row[1] = f"{i * hop:.6f}"
            with open(target / folder / path.name, "w", newline="") as handle:
                csv.writer(handle, delimiter=";").writerows(rows)
    return target


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the hop was checked")


@pytest.mark.slow
def test_features_at_another_hop_are_refused_before_the_model_loads(run_dir, corpus_dir, tmp_path, capsys, monkeypatch):
    config = json.loads((Path(run_dir) / "config.json").read_text())
    assert config["runtime"]["hop"] == pytest.approx(0.1)  # the trainer records the corpus hop
    data = features_at_hop(corpus_dir, tmp_path / "fast", 0.04)
    monkeypatch.setattr(predictors, "KerasPredictor", _no_model)
    out = tmp_path / "out"
    code, _, err = predict_cli(
        capsys, "--run-dir", run_dir, "--dataset", "avec", "--data-dir", data, "--output-dir", out
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {data}: "), err
    assert "frames 0.04 s apart" in lines[0] and "trained on frames 0.1 s apart" in lines[0], lines[0]
    assert f"runtime.hop of {Path(run_dir) / 'config.json'}" in lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_a_run_saved_without_its_hop_counts_as_trained_at_a_tenth_of_a_second(run_dir, corpus_dir, tmp_path, capsys):
    old = tmp_path / "old_run"
    old.mkdir()
    config = json.loads((Path(run_dir) / "config.json").read_text())
    del config["runtime"]["hop"]  # as the trainer wrote it before it recorded the hop
    (old / "config.json").write_text(json.dumps(config))
    shutil.copy(Path(run_dir) / "model.keras", old / "model.keras")

    data = features_at_hop(corpus_dir, tmp_path / "fast", 0.04)
    code, _, err = predict_cli(
        capsys, "--run-dir", old, "--dataset", "avec", "--data-dir", data, "--output-dir", tmp_path / "a"
    )
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert "frames 0.04 s apart" in line and "trained on frames 0.1 s apart" in line, line
    assert "records no hop" in line and str(old / "config.json") in line, line

    code, out, err = predict_cli(capsys, "--run-dir", old, "--data-dir", corpus_dir, "--output-dir", tmp_path / "b")
    assert code is None, err  # features at 0.1 s: predicted as before
    assert sorted(p.name for p in (tmp_path / "b").glob("*.csv")) == sorted(
        p.name for p in (corpus_dir / "audio").glob("Test_*.csv")
    )


def test_the_trained_hop_is_the_recorded_one_else_a_tenth_of_a_second():
    from pipelines.core.errors import DataError
    from pipelines.runs import folders as runs

    assert runs.trained_hop({}) == runs.trained_hop({"runtime": {"artifact_dir": "x"}}) == 0.1
    assert runs.trained_hop({"runtime": {"hop": 0.04}}) == 0.04
    prediction_inputs.check_hop(0.1, {"runtime": {}}, "RUN/config.json", "DATA")
    prediction_inputs.check_hop(0.04, {"runtime": {"hop": 0.04}}, "RUN/config.json", "DATA")
    with pytest.raises(DataError, match=r"frames 0\.1 s apart, but the model was trained on frames 0\.04 s apart"):
        prediction_inputs.check_hop(0.1, {"runtime": {"hop": 0.04}}, "RUN/config.json", "DATA")


def test_avec_reader_keeps_requiring_labels_unless_asked(corpus_dir, tmp_path):
    from pipelines.core.errors import DataError

    data = tmp_path / "features_only"
    shutil.copytree(corpus_dir / "audio", data / "audio")
    shutil.copytree(corpus_dir / "visual", data / "visual")
    with pytest.raises(DataError, match="no labels folder"):
        open_avec(data, audio_features=["audio"], visual_features=["visual"])
    corpus = open_avec(data, audio_features=["audio"], visual_features=["visual"], labels_optional=True)
    recordings = list(corpus.recordings())
    assert len(recordings) == len(list((data / "audio").glob("*.csv")))
    assert all(not r.labelled for r in recordings)
    # Labelled partitions are still read (and checked) from their label files.
    labelled = open_avec(corpus_dir, audio_features=["audio"], visual_features=["visual"], labels_optional=True)
    assert all(r.labelled == (r.partition != "test") for r in labelled.recordings())


def test_extra_columns_take_every_per_frame_output_besides_the_predictions():
    n = 4
    outputs = {
        "valence": np.zeros(n),
        "arousal": np.zeros(n),
        "valence_utterance": np.float32(0.1),
        "audio_weight": np.full(n, 0.3),
        "visual_sigma_norm": np.arange(n, dtype=np.float32),
        "valence_std": np.full(n, 0.2),
        "arousal_lower": np.full(n, -0.5),
        "arousal_upper": np.full(n, 0.5),
        "audio_valence": np.arange(n * 3, dtype=np.float32).reshape(n, 3),
    }
    columns = prediction_files.extra_columns(outputs)
    assert list(columns) == [
        "arousal_lower",
        "arousal_upper",
        "audio_valence_0",
        "audio_valence_1",
        "audio_valence_2",
        "audio_weight",
        "valence_std",
        "visual_sigma_norm",
    ]
    np.testing.assert_array_equal(columns["audio_valence_2"], [2, 5, 8, 11])
    np.testing.assert_array_equal(columns["valence_std"], outputs["valence_std"])


@pytest.mark.slow
def test_streaming_validation_ccc_agrees_with_the_partition_ccc(run_dir):
    """history.csv's val_ccc_* (StreamingCCC over the epoch) equals metrics.json's partition CCC (AVEC's
    definition) for the kept epoch: the training metric and the reported score are one definition."""
    import json

    history = list(csv.DictReader(open(Path(run_dir) / "history.csv")))
    assert len(history) == 1  # one epoch: the kept weights are that epoch's
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    validation = json.loads((Path(run_dir) / "config.json").read_text())["training"]["validation_partition"]
    for branch, prefix in (("av", ""), ("audio", "audio_"), ("visual", "visual_")):
        for dim in ("valence", "arousal"):
            assert float(history[0][f"val_{prefix}ccc_{dim}"]) == pytest.approx(
                metrics[validation][branch][f"ccc_{dim}"], abs=2e-5
            )


def test_utterance_table_is_assembled_from_one_part_per_utterance(tmp_path):
    """Sequence-level output without a model: parts, then utterances.csv / utterances_extra.csv."""
    outputs = {
        "valence": np.array([0.1, 0.3]),
        "arousal": np.array([0.0, 0.2]),
        "valence_utterance": np.float32(0.25),
        "arousal_utterance": np.float32(-0.5),
        "audio_weight": np.array([0.2, 0.6]),
        "valence_utterance_std": np.float32(0.1),
    }
    for name in ("Ses05F_impro01_F000", "Ses05F_impro01_M001"):
        prediction_files.write_recording({"name": name}, outputs, tmp_path, "regression", True)
    files = prediction_files.assemble_utterances(tmp_path, ["Ses05F_impro01_F000", "Ses05F_impro01_M001"])
    assert files == ["utterances.csv", "utterances_extra.csv"]
    header, rows = read_rows(tmp_path / "utterances.csv")
    assert header == ["name", "timestamp", "arousal", "valence"]
    assert [row[0] for row in rows] == ["'Ses05F_impro01_F000'", "'Ses05F_impro01_M001'"]
    np.testing.assert_allclose(numbers(rows), [[0.0, -0.5, 0.25]] * 2, atol=1e-6)
    header, rows = read_rows(tmp_path / "utterances_extra.csv")
    assert header == ["name", "timestamp", "audio_weight", "valence_utterance_std"]
    np.testing.assert_allclose(numbers(rows), [[0.0, 0.4, 0.1]] * 2, atol=1e-6)


@pytest.mark.slow
def test_intervals_level_plots_and_avec_columns(run_dir, corpus_dir, tmp_path, capsys):
    """--level 0.5 gives the conformal intervals at 50%; --no-intervals writes AVEC's four columns;
    --plot draws one timeline per recording."""
    wide, narrow, avec = tmp_path / "wide", tmp_path / "narrow", tmp_path / "avec"
    common = ["--run-dir", run_dir, "--data-dir", corpus_dir]
    assert predict_cli(capsys, *common, "--output-dir", wide, "--plot")[0] is None
    assert predict_cli(capsys, *common, "--output-dir", narrow, "--level", "0.5")[0] is None
    assert predict_cli(capsys, *common, "--output-dir", avec, "--no-intervals")[0] is None
    names = sorted(p.name for p in wide.glob("*.csv"))
    assert sorted(p.name for p in (wide / "plots").glob("*.png")) == [n.replace(".csv", ".png") for n in names]
    assert (wide / "plots" / names[0].replace(".csv", ".png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (narrow / "plots").exists()
    for name in names:
        header, rows = read_rows(wide / name)
        _, narrow_rows = read_rows(narrow / name)
        values, narrow_values = numbers(rows), numbers(narrow_rows)
        lower, upper = header.index("valence_lower") - 1, header.index("valence_upper") - 1
        assert_half_widths_are_quantiles(
            (narrow_values[:, upper] - narrow_values[:, lower]) / 2, run_dir, "valence", 0.5
        )
        assert (narrow_values[:, upper] - narrow_values[:, lower] < values[:, upper] - values[:, lower]).all()
        avec_header, avec_rows = read_rows(avec / name)
        assert avec_header == ["name", "timestamp", "arousal", "valence"]
        np.testing.assert_allclose(numbers(avec_rows), values[:, :3], atol=1e-6)
    code, _, err = predict_cli(capsys, *common, "--output-dir", tmp_path / "bad", "--level", "1.2")
    assert code == 2 and "argument --level: must lie strictly between 0 and 1, got 1.2" in err
    code, _, err = predict_cli(capsys, *common, "--output-dir", tmp_path / "bad", "--level", "0.85")
    assert code == 2 and "the conformal intervals are fitted at 0.5, 0.8, 0.9, 0.95" in err


@pytest.mark.slow
def test_a_run_without_calibration_predicts_without_intervals_and_says_how_to_add_them(
    run_dir, corpus_dir, tmp_path, capsys
):
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("backup", "tensorboard", "predictions"))
    # Without the conformal intervals: mu -+ 1.6449 std of the isotonic calibration, and a note.
    (old / "conformal_calibration.json").unlink()
    out = tmp_path / "isotonic"
    code, _, err = predict_cli(capsys, "--run-dir", old, "--data-dir", corpus_dir, "--output-dir", out)
    assert code is None, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {old} has no conformal_calibration.json (trained before the trainer fitted one), so its intervals "
        f"are the isotonic ones; add it with python -m pipelines.uncertainty --run-dir {old}"
    ]
    for path in out.glob("*.csv"):
        header, rows = read_rows(path)
        extra_header, extra = read_rows(out / "extra" / path.name)
        values = numbers(rows)
        for dim in ("arousal", "valence"):
            mu = values[:, header.index(dim) - 1]
            std = numbers(extra)[:, extra_header.index(f"{dim}_std") - 1]
            assert (std > 0).all()
            np.testing.assert_allclose(values[:, header.index(f"{dim}_lower") - 1], mu - 1.6448536 * std, atol=2e-6)
            np.testing.assert_allclose(values[:, header.index(f"{dim}_upper") - 1], mu + 1.6448536 * std, atol=2e-6)
    (old / "uncertainty_calibration.json").unlink()
    out = tmp_path / "out"
    code, _, err = predict_cli(capsys, "--run-dir", old, "--data-dir", corpus_dir, "--output-dir", out)
    assert code is None, err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {old} has no uncertainty calibration (trained before the trainer fitted one), so the predictions "
        f"have no intervals; add it with python -m pipelines.uncertainty --run-dir {old}"
    ]
    header, _ = read_rows(next(out.glob("*.csv")))
    assert header == ["name", "timestamp", "arousal", "valence"] + PRESENCE_COLUMNS
