"""Tests of the per-frame uncertainty calibration (pipelines.uncertainty), its use by the evaluator,
MC dropout, the deep ensemble command and the std outputs baked into a model, on the tiny runs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from pipelines import uncertainty as uncertainty_command
from pipelines.core.errors import ConfigError
from pipelines.evaluation import evaluate, uncertainty, uncertainty_scores
from pipelines.evaluation import uncertainty_report as uncertainty_report_lib
from tests.pipelines import evaluation_helpers as helpers
from tests.pipelines.commands import run_command

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def second_run(tmp_path_factory):
    """A second COLD run on the same artefacts (the ablation's 1-epoch `all` variant)."""
    output_dir, _ = helpers.tiny_ablation(tmp_path_factory)
    return output_dir / "all_seed0"


@pytest.fixture(scope="session")
def uncertainty_report(regression_run):
    return evaluate.run(regression_run, "test", "visual:0.5", "noise", plot_first=0, verbose=False)


def _native_score(outputs):
    """The fused score written out: w_A / ||sigma_A|| + w_V / ||sigma_V|| (informativeness convention)."""
    return (
        outputs["audio_weight"] / outputs["audio_sigma_norm"] + outputs["visual_weight"] / outputs["visual_sigma_norm"]
    )


def test_calibration_is_fitted_on_validation_and_reproduces_its_coverage(regression_run, uncertainty_report):
    calibration = uncertainty.Calibration.load(regression_run)
    assert calibration.fitted_on == "devel" and calibration.method == "native"
    recordings, outputs = helpers.predict(regression_run, "devel")
    for dim in ("valence", "arousal"):
        entry = calibration.maps[f"av_{dim}"]
        assert np.all(np.diff(entry["x"]) > 0) and np.all(np.diff(entry["y"]) >= 0)
        score = np.concatenate([_native_score(o) for o in outputs])
        std = entry["scale"] * np.interp(score, entry["x"], entry["y"])
        error = np.abs(np.concatenate([r[dim] for r in recordings]) - np.concatenate([o[dim] for o in outputs]))
        # The scale puts 90% of the validation frames inside mu +- 1.645 std (up to one frame).
        assert np.mean(error <= 1.6448536269514722 * std + 1e-9) == pytest.approx(0.9, abs=1.5 / error.size)
        mapped = calibration.std({k: v for k, v in outputs[0].items()})[f"{dim}_std"]
        np.testing.assert_allclose(mapped, std[: len(mapped)], rtol=1e-5)


def test_evaluator_reports_the_metrics_of_its_per_frame_std(regression_run, uncertainty_report):
    section = uncertainty_report["predictive_uncertainty"]
    assert section["method"] == "native" and set(section["metrics"]) >= {"av_valence", "audio_arousal"}
    out = regression_run / "evaluation" / "test_corrupt-visual-0.5-noise"
    for name in uncertainty_report_lib.FIGURES.values():
        assert (out / name).read_bytes().startswith(PNG)
    ys, mus, stds, lowers, uppers = [], [], [], [], []
    recordings, _ = helpers.predict(regression_run, "test")
    for recording in recordings:
        rows = list(csv.DictReader(open(out / "frames" / f"{recording['name']}.csv"), delimiter=";"))
        mus.append([float(r["valence"]) for r in rows])
        stds.append([float(r["valence_std"]) for r in rows])
        lowers.append([float(r["valence_lower"]) for r in rows])
        uppers.append([float(r["valence_upper"]) for r in rows])
        ys.append(recording["valence"])
    y, mu, std, lower, upper = (np.concatenate(v).astype(np.float64) for v in (ys, mus, stds, lowers, uppers))
    row = section["metrics"]["av_valence"]
    z = 1.6448536269514722
    # The 90% figures are the conformal intervals'; the isotonic ones stay beside them.
    assert row["picp_90_isotonic"] == pytest.approx(np.mean(np.abs(y - mu) <= z * std), abs=2.0 / y.size)
    assert row["width_90_isotonic"] == pytest.approx(np.mean(2 * z * std), rel=1e-4)
    corrupted = uncertainty_report["intervals"]["conditions"]["visual-0.5-noise"]["av_valence"]
    assert (row["picp_90"], row["width_90"]) == (corrupted["picp"], corrupted["width"])
    # The per-frame CSVs hold those bounds (6 decimals): they give the reported coverage and width.
    assert np.all(lower <= mu + 1e-6) and np.all(mu <= upper + 1e-6)
    assert corrupted["picp"] == pytest.approx(np.mean((lower <= y) & (y <= upper)), abs=2.0 / y.size)
    assert corrupted["width"] == pytest.approx(np.mean(upper - lower), abs=1e-5)
    nll = np.mean(0.5 * np.log(2 * np.pi * std**2) + (y - mu) ** 2 / (2 * std**2))
    assert row["nll"] == pytest.approx(nll, rel=1e-3)
    assert row["ccc"] == pytest.approx(helpers.numpy_ccc(y, mu), abs=1e-5)
    text = (out / "report.txt").read_text()
    assert "predictive uncertainty (native" in text and "AUSE" in text


def test_trainer_fits_conformal_intervals_the_evaluator_scores_per_condition_and_recording(
    regression_run, uncertainty_report, capsys
):
    from pipelines.evaluation import conformal, interval_report

    calibration = conformal.load(regression_run)
    assert calibration.fit_corruptions == list(conformal.DEFAULT_FIT_CORRUPTIONS) and calibration.fitted_on == "devel"
    devel, _ = helpers.predict(regression_run, "devel")
    assert calibration.num_frames == (1 + len(conformal.DEFAULT_FIT_CORRUPTIONS)) * sum(
        len(r["valence"]) for r in devel
    )
    section = uncertainty_report["intervals"]
    assert section["method"] == "conformal" and set(section["conditions"]) == {"clean", "visual-0.5-noise"}
    recordings, outputs = helpers.predict(regression_run, "test")
    for key, dim, prefix in (("av_valence", "valence", ""), ("visual_arousal", "arousal", "visual_")):
        inside, widths = [], []
        for recording, out in zip(recordings, outputs):
            flags = {k: recording[k] for k in ("audio_present", "visual_present") if recording.get(k) is not None}
            half = calibration.half_widths({**flags, **out})[key]
            inside.append(np.abs(recording[dim] - out[f"{prefix}{dim}"]) <= half)
            widths.append(2 * half)
        row = section["conditions"]["clean"][key]
        per_recording = [float(np.mean(part)) for part in inside]
        assert row["picp"] == pytest.approx(np.mean(np.concatenate(inside)), abs=2.0 / sum(map(len, inside)))
        assert row["recording_picp_worst"] == pytest.approx(min(per_recording), abs=2.0 / len(inside[0]))
        assert row["recording_picp_mean"] == pytest.approx(np.mean(per_recording), abs=2.0 / len(inside[0]))
        assert row["width"] == pytest.approx(np.mean(np.concatenate(widths)), rel=1e-5)
    damaged = section["conditions"]["visual-0.5-noise"]["av_valence"]
    assert damaged["width_damaged"] > 0 and damaged["width_intact"] > 0 and "picp_damaged" in damaged
    out = regression_run / "evaluation" / "test_corrupt-visual-0.5-noise"
    text = (out / "report.txt").read_text()
    assert "90% conformal intervals (conformal_calibration.json" in text and "visual-0.5-noise" in text
    # A run without the file keeps the isotonic intervals and says in one line how to add it.
    report = {"predictive_uncertainty": {"metrics": {"av_valence": {"picp_90": 0.5, "width_90": 1.0}}}}
    interval_report.conformal_section(report, regression_run / "missing", [], [], None)
    assert report["intervals"]["method"] == "isotonic"
    assert report["predictive_uncertainty"]["metrics"]["av_valence"] == {"picp_90": 0.5, "width_90": 1.0}
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "python -m pipelines.uncertainty --run-dir" in lines[0], lines


def test_std_outputs_baked_into_the_model_match_the_numpy_map(regression_run, uncertainty_report):
    from pipelines.evaluation import scoring as evaluation
    from pipelines.runs import folders as runs

    calibration = uncertainty.Calibration.load(regression_run)
    infer, _ = runs.load_inference_model(regression_run)
    model = uncertainty.with_std_outputs(infer, calibration)
    recordings, outputs = helpers.predict(regression_run, "test")
    recording = recordings[0]
    batch = evaluation.model_inputs(
        model,
        recording["audio"][None].astype(np.float32),
        recording["visual"][None].astype(np.float32),
        np.ones((1, len(recording["audio"])), np.float32),
    )
    served = model.predict_on_batch(batch)
    expected = calibration.std(outputs[0])
    for name in ("valence_std", "arousal_std", "audio_valence_std", "visual_arousal_std"):
        np.testing.assert_allclose(np.asarray(served[name])[0], expected[name], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(served["valence"])[0], outputs[0]["valence"], atol=1e-5)


def test_mc_dropout_mean_and_spread_of_the_passes(regression_run):
    from pipelines.components import input_pipeline
    from pipelines.runs import folders as runs

    infer, config = runs.load_inference_model(regression_run)
    recordings = list(input_pipeline.iter_recordings(config.runtime["artifact_dir"], "test"))[:1]
    first = uncertainty_scores.predict_mc_dropout(infer, recordings, passes=6, seed=1)[0]["outputs"]
    assert np.all(first["valence_spread"] > 0)  # dropout (and COLD's sampling) are on
    assert first["valence"].shape == first["valence_spread"].shape == recordings[0]["valence"].shape
    samples = [
        {"valence": np.array([1.0, 2.0]), "arousal": np.array([0.0, 0.0])},
        {"valence": np.array([3.0, 2.0]), "arousal": np.array([1.0, -1.0])},
    ]
    combined = uncertainty_scores._combine(samples)
    np.testing.assert_allclose(combined["valence"], [2.0, 2.0])
    np.testing.assert_allclose(combined["valence_spread"], [1.0, 0.0])
    np.testing.assert_allclose(combined["arousal_spread"], [0.5, 0.5])


def test_evaluator_mc_dropout_writes_its_own_calibration(regression_run, tmp_path):
    report = evaluate.run(
        regression_run, "test", plot_first=0, output_dir=tmp_path, verbose=False, uncertainty="mc_dropout", mc_passes=4
    )
    calibration = uncertainty.Calibration.load(regression_run, "mc_dropout")
    assert calibration.passes == 4 and "stochastic passes" in calibration.score
    assert report["predictive_uncertainty"]["method"] == "mc_dropout"
    assert set(report["predictive_uncertainty"]["metrics"]["av_arousal"]) >= set(uncertainty_report_lib.METRIC_KEYS)


def test_ensemble_command_scores_the_members_mean(regression_run, second_run, tmp_path):
    result = run_command(
        "ensemble",
        ["--runs", f"{regression_run},{second_run}", "--output-dir", tmp_path / "ens", "--partition", "test"],
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "ens" / "evaluation" / "test" / "report.json").read_text())
    _, first = helpers.predict(regression_run, "test")
    recordings, second = helpers.predict(second_run, "test")
    y = np.concatenate([r["arousal"] for r in recordings])
    mean = np.concatenate([(a["arousal"] + b["arousal"]) / 2 for a, b in zip(first, second)])
    assert report["scores"]["av"]["ccc_arousal"] == pytest.approx(helpers.numpy_ccc(y, mean), abs=1e-4)
    calibration = uncertainty.Calibration.load(tmp_path / "ens", "ensemble")
    assert calibration.members == [str(regression_run), str(second_run)]
    assert (tmp_path / "ens" / "evaluation" / "test" / uncertainty_report_lib.FIGURES["sparsification"]).is_file()


def test_bad_input_is_one_line_errors(regression_run, tmp_path):
    result = helpers.cli(
        "pipelines.ensemble", ["--runs", f"{regression_run},{regression_run}", "--output-dir", tmp_path]
    )
    helpers.assert_one_line_error(result, "same run directory twice")
    result = helpers.cli("pipelines.uncertainty", ["--run-dir", tmp_path / "missing"])
    helpers.assert_one_line_error(result, "run directory not found")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / uncertainty.CALIBRATION_FILES["native"]).write_text("{")
    with pytest.raises(Exception, match="not valid JSON"):
        uncertainty.Calibration.load(tmp_path / "broken")


@pytest.mark.slow
def test_exported_signature_carries_the_calibrated_std(regression_run, uncertainty_report, tmp_path):
    import tensorflow as tf

    from pipelines.runs import folders as runs
    from pipelines.serving import servable

    infer, config = runs.load_inference_model(regression_run)
    model = uncertainty.servable_model(infer, regression_run, config, config.runtime["artifact_dir"])
    servable.save_saved_model(model, tmp_path / "1")
    signature = tf.saved_model.load(str(tmp_path / "1")).signatures["without_mask"]
    recordings, outputs = helpers.predict(regression_run, "test")
    served = signature(
        audio=recordings[1]["audio"][None].astype(np.float32), visual=recordings[1]["visual"][None].astype(np.float32)
    )
    expected = uncertainty.Calibration.load(regression_run).std(outputs[1])
    assert {"valence_std", "arousal_std", "audio_valence_std", "visual_arousal_std"} <= set(served)
    for name in ("valence_std", "arousal_std"):
        np.testing.assert_allclose(served[name].numpy()[0], expected[name], rtol=1e-5, atol=1e-6)


def test_compare_draws_several_runs_uncertainty_curves(regression_run, uncertainty_report, tmp_path):
    result = helpers.cli(
        "pipelines.compare",
        [
            regression_run,
            regression_run.parent / "missing",
            "--uncertainty-plot",
            tmp_path / "curves.png",
            "--evaluation",
            "test_corrupt-visual-0.5-noise",
        ],
    )
    helpers.assert_one_line_error(result, "report.json")
    rows = uncertainty_report_lib.compare_runs(
        [regression_run], "test_corrupt-visual-0.5-noise", tmp_path / "curves.png", verbose=False
    )
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG)
    ((label, by_dim),) = rows.items()
    assert label.endswith("[native]")
    assert by_dim["valence"] == uncertainty_report["predictive_uncertainty"]["metrics"]["av_valence"]


def test_predict_from_a_run_gives_the_calibrated_std(regression_run, uncertainty_report):
    from pipelines.serving import prediction_files, predictors

    predictor = predictors.KerasPredictor(regression_run)
    assert predictor.calibration is not None
    recordings, outputs = helpers.predict(regression_run, "test")
    got = predictor(recordings[0])
    expected = uncertainty.Calibration.load(regression_run).std(outputs[0])
    for name in ("valence_std", "arousal_std", "audio_valence_std", "visual_arousal_std"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)
    # The std columns reach the per-recording extra file through the generic extra columns.
    assert {"valence_std", "arousal_std"} <= set(prediction_files.extra_columns(got))
    # With a level, the interval columns are the conformal bounds (at that level).
    from pipelines.evaluation import conformal

    calibration = conformal.load(regression_run)
    flags = {k: recordings[0][k] for k in ("audio_present", "visual_present") if recordings[0].get(k) is not None}
    for level in (0.9, 0.8):
        got = predictors.KerasPredictor(regression_run, level)(recordings[0])
        expected = calibration.bounds({**flags, **outputs[0]}, level)
        columns = prediction_files.main_columns(recordings[0], got, "regression", level)
        for name in ("valence_lower", "arousal_upper"):
            np.testing.assert_allclose(columns[name], expected[name], atol=1e-6)
        np.testing.assert_allclose(got["audio_valence_upper"], expected["audio_valence_upper"], atol=1e-6)
    with pytest.raises(ConfigError, match="--level 0.85: the conformal intervals are fitted at 0.5, 0.8, 0.9, 0.95"):
        predictors.KerasPredictor(regression_run, 0.85)


def test_fit_corrupt_fits_on_the_validation_partition_and_its_corrupted_copies(regression_run, tmp_path, capsys):
    from pipelines.evaluation import conformal

    run = tmp_path / "run"
    # A run trained before the conformal intervals existed: the command adds them.
    shutil.copytree(regression_run, run, ignore=shutil.ignore_patterns("evaluation", conformal.CALIBRATION_FILE))
    specs = "visual:0.5:dropout,visual:0.5:frozen"
    uncertainty_command.main(["--run-dir", str(run), "--fit-corrupt", specs])
    out = capsys.readouterr().out
    assert "+ corrupted copies (visual:0.5:dropout, visual:0.5:frozen)" in out
    assert "conformal intervals fitted on devel + 7 corrupted copies" in out
    assert conformal.load(run).to_json() == conformal.load(regression_run).to_json()
    calibration = uncertainty.Calibration.load(run)
    assert calibration.fit_corruptions == specs.split(",") and calibration.fitted_on == "devel"
    recordings, _ = helpers.predict(regression_run, "devel")
    frames = sum(len(r["valence"]) for r in recordings)
    assert calibration.maps["av_valence"]["num_frames"] == 3 * frames
    # The copies change the fit: the clean-only map of the shared run differs.
    clean = uncertainty.Calibration.load(regression_run)
    assert clean.fit_corruptions is None and clean.maps["av_valence"] != calibration.maps["av_valence"]
    with pytest.raises(SystemExit) as leave:
        uncertainty_command.main(["--run-dir", str(run), "--fit-corrupt", "visual:0.5:blur"])
    assert leave.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --fit-corrupt mode must be one of"), lines
