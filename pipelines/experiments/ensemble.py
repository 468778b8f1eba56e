"""Deep ensemble: `python -m pipelines.ensemble --runs RUN1,RUN2,... --output-dir ENSEMBLE [--corrupt visual:0.5]`.

Evaluates several training runs of the same data (e.g. one configuration trained with different seeds)
as one model: per frame, the prediction is the members' mean and the uncertainty score the std of the
members' predictions, mapped to a calibrated std on the validation partition of the first member
(`pipelines.uncertainty`, method `ensemble`). Writes, under `ENSEMBLE/`:

    ensemble.json                              the members
    uncertainty_calibration_ensemble.json      the fitted score -> std map
    evaluation/<partition>[_corrupt-...]/      report.json, report.txt, the uncertainty figures and
                                               frames/<name>.csv (per-frame predictions and std)

The report holds the same figures as `pipelines.evaluate` for a regression run (CCC per branch and the
predictive-uncertainty metrics), so an ensemble compares with a single run (`pipelines.compare
--uncertainty-plot`).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import write_bytes_atomic, write_json_atomic
from pipelines.data import corrupt as corrupt_lib
from pipelines.data import features
from pipelines.runs.folders import load_inference_model, open_run


def open_members(run_dirs):
    """(configs, artifact_dir, manifest) of the member runs; refuses runs of different data or task."""

    if len(run_dirs) < 2:
        raise ConfigError(f"--runs needs at least two run directories, got {len(run_dirs)}")
    if len({str(Path(r).resolve()) for r in run_dirs}) != len(run_dirs):
        raise ConfigError("--runs lists the same run directory twice")
    configs, artifact_dirs, manifest = [], [], None
    for run_dir in run_dirs:
        config, artifact_dir, manifest_of = open_run(run_dir)
        if config.task != "regression":
            raise ConfigError("an ensemble's uncertainty applies to regression runs", Path(run_dir) / "config.json")
        configs.append(config)
        artifact_dirs.append(Path(artifact_dir).resolve())
        manifest = manifest or manifest_of
    if len(set(artifact_dirs)) != 1:
        other = next(a for a in artifact_dirs if a != artifact_dirs[0])
        raise DataError(
            f"the members were trained on different data artefacts ({artifact_dirs[0]} and {other})",
            Path(run_dirs[-1]) / "config.json",
        )
    return configs, artifact_dirs[0], manifest


def run(
    run_dirs, output_dir, partition=features.DEVEL, corrupt=None, corrupt_mode=None, *, seed=0, verbose=True
) -> dict:
    """Evaluates the ensemble of `run_dirs` on one partition; returns the report (also in report.json)."""
    from pipelines.evaluation import evaluate, uncertainty_report, uncertainty_scores
    from pipelines.evaluation import report as report_lib
    from pipelines.evaluation import uncertainty as uncertainty_lib

    run_dirs = [Path(r) for r in run_dirs]
    configs, artifact_dir, manifest = open_members(run_dirs)
    evaluate.check_partition(manifest, partition, artifact_dir)
    if manifest["partitions"][partition].get("sequence_level", False):
        raise ConfigError(f"partition {partition!r} is sequence-level; the ensemble scores frame-level corpora")
    corruption = None
    if corrupt:
        modality, fraction = corrupt_lib.parse_spec(corrupt)
        corrupt_mode = corrupt_mode or corrupt_lib.default_mode(modality, False)
        if corrupt_mode == "face_mask":
            raise ConfigError("--corrupt-mode face_mask applies to raw-mode runs; the ensemble takes features")
        corruption = (modality, fraction, corrupt_mode)
    output_dir = Path(output_dir)
    validation = configs[0].training.validation_partition

    from pipelines.components import input_pipeline  # TensorFlow starts here, after the checks above
    from pipelines.evaluation import scoring as evaluation  # TensorFlow starts here, after the checks above

    models = [load_inference_model(r)[0] for r in run_dirs]
    members = [str(r) for r in run_dirs]
    calibration_path = output_dir / uncertainty_lib.CALIBRATION_FILES["ensemble"]
    calibration = None
    if calibration_path.is_file():
        calibration = uncertainty_lib.Calibration.load(output_dir, "ensemble")
        if calibration.members != members:
            calibration = None
    if calibration is None:
        val_recordings = list(input_pipeline.iter_recordings(artifact_dir, validation))
        val_predictions = uncertainty_scores.predict_ensemble(models, val_recordings)
        calibration = uncertainty_lib.fit_calibration(
            val_predictions, method="ensemble", fitted_on=validation, members=members
        )
        write_json_atomic(output_dir / "ensemble.json", {"members": members, "artifact_dir": str(artifact_dir)})
        calibration.save(output_dir)

    recordings = list(input_pipeline.iter_recordings(artifact_dir, partition))
    clean = uncertainty_scores.predict_ensemble(models, recordings)
    evaluated = clean
    if corruption:
        modality, fraction, mode = corruption
        evaluated = uncertainty_scores.predict_ensemble(
            models, corrupt_lib.corrupt_recordings(recordings, modality, fraction, mode=mode, seed=seed)
        )
    scores, _ = evaluation.score_partition(evaluated, task="regression")
    clean_scores = scores if corruption is None else evaluation.score_partition(clean, task="regression")[0]
    out_dir = output_dir / "evaluation" / evaluate.output_folder_name(partition, corruption)
    calibrated = uncertainty_lib.attach_std(evaluated, calibration)
    section = uncertainty_report.uncertainty_metrics(calibrated, calibration)
    report = {
        "run_dir": str(output_dir),
        "model": f"ensemble of {len(models)} {configs[0].model.name}",
        "members": members,
        "task": "regression",
        "partition": partition,
        "sequence_level": False,
        "num_recordings": len(evaluated),
        "num_frames": int(sum(len(r["outputs"][features.VALENCE]) for r in evaluated)),
        "corruption": None
        if corruption is None
        else {
            "modality": corruption[0],
            "fraction": corruption[1],
            "mode": corruption[2],
            "seed": seed,
            "num_frames_corrupted": int(sum(r[f"{corruption[0]}_corrupted_eval"].sum() for r in evaluated)),
        },
        "scores": scores,
        "scores_clean": clean_scores,
        "predictive_uncertainty": {
            "method": "ensemble",
            "score": calibration.score,
            "fitted_on": calibration.fitted_on,
            "passes": None,
            "calibration_file": uncertainty_lib.CALIBRATION_FILES["ensemble"],
            "metrics": section,
        },
        "output_dir": str(out_dir),
    }
    files = []
    title = f"{report['model']} {partition}" + ("" if corruption is None else " (corrupted)")
    for name, data in uncertainty_report.figures(section, title).items():
        write_bytes_atomic(out_dir / name, data)
        files.append(name)
    uncertainty_report.write_frame_csvs(calibrated, out_dir / "frames")
    files.append("frames/")
    report["files"] = files
    return report_lib.write_report(report, format_report(report), out_dir, verbose)


def format_report(report) -> str:
    from pipelines.evaluation import report as report_lib
    from pipelines.evaluation import scoring as evaluation
    from pipelines.evaluation import uncertainty_report

    corruption = report["corruption"]
    condition = (
        "clean"
        if corruption is None
        else (f"{corruption['modality']} {corruption['fraction']:.0%} corrupted ({corruption['mode']})")
    )
    lines = [
        f"{report['model']} on {report['partition']}, {condition}: {report['num_recordings']} recordings, "
        f"{report['num_frames']} frames",
        "",
        evaluation.format_table({report["partition"]: report["scores"]}, "regression"),
    ]
    if corruption is not None:
        lines += ["", report_lib.robustness_table(report["scores_clean"], report["scores"], "regression")]
    lines += ["", uncertainty_report.format_section(report["predictive_uncertainty"])]
    return "\n".join(lines)
