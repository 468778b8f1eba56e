"""The evaluator (`run`), the work of `python -m pipelines.evaluate --run-dir RUN [--corrupt visual:0.5] ...`.

Scores a finished training run on one partition and writes, under
`RUN/evaluation/<partition>[_corrupt-<modality>-<fraction>-<mode>]/`:

    report.json  report.txt  per_recording.csv
    reliability_<branch>_<dimension>.png   (classification, paper Fig. 7)
    timeline_<recording>.png               (predictions and fusion weights over time)

* Regression: CCC per branch over the partition's concatenated frames (AVEC's way) and per recording.
* Classification: macro precision/recall/F1 and the expected calibration error before and after
  temperature scaling, with T fitted on the run's validation partition (`training.validation_partition`)
  and applied to the evaluated one.
* Robustness (`--corrupt visual:0.5`): the chosen modality is corrupted in consecutive blocks
  (`pipelines.data.corrupt`) and the corrupted scores are reported next to the clean ones.
* Uncertainty, for models that output sigma norms and fusion weights (COLD fusion, and the fusion
  weights of prediction fusion): per modality the Spearman correlation of 1/||sigma|| with that
  modality's per-frame error, and the fusion weight on corrupted vs clean frames with the ROC AUC of
  (1 - w_m) as a detector of corrupted frames (the synthetic corpus's ground truth, and the
  evaluator's own corruption) (`pipelines.evaluation.diagnostics`).
* Predictive uncertainty (frame-level regression): a per-frame std in label units from the run's
  validation-fitted calibration (`pipelines.uncertainty`; `--uncertainty mc_dropout` for MC dropout),
  scored by NLL, interval coverage and width, calibration curve, ENCE, sparsification (AUSE) and the
  reject-option CCC, with `uncertainty_*.png` figures and `frames/<recording>.csv` holding the std
  (and the conformal bounds).
  The PICP and width at 90% come from the run's conformal intervals (`conformal_calibration.json`),
  whose coverage the report also gives per condition (clean and the `--corrupt` one) and per
  recording (`pipelines.evaluation.interval_report`); a run without the file keeps the isotonic ones.

`report.json` is written last (`pipelines.evaluation.report`), so a folder holding it is a complete evaluation.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import write_bytes_atomic, write_text_atomic
from pipelines.core.pause import pause_point
from pipelines.data import corrupt as corrupt_lib
from pipelines.data import features
from pipelines.evaluation import diagnostics, figures
from pipelines.evaluation import report as report_lib
from pipelines.runs.folders import load_inference_model, open_run

# --------------------------------------------------------------------------- run directory


def check_partition(manifest, partition, artifact_dir):
    """Raises ConfigError for a partition the data lacks, DataError for an unlabelled one."""
    partitions = manifest["partitions"]
    if partition not in partitions:
        raise ConfigError(f"unknown partition {partition!r}; the run's data has {', '.join(sorted(partitions))}")
    if not partitions[partition].get("labelled", True):
        raise DataError(
            f"partition {partition!r} has no labels, so it cannot be scored", Path(artifact_dir) / "manifest.json"
        )


def output_folder_name(partition, corruption=None) -> str:
    """`devel`, or `devel_corrupt-visual-0.5-noise` with a (modality, fraction, mode) corruption."""
    if corruption is None:
        return partition
    modality, fraction, mode = corruption
    return f"{partition}_corrupt-{modality}-{fraction:g}-{mode}"


def _select_plots(names, plot_recordings, plot_first):
    if plot_recordings:
        wanted = (
            [name.strip() for name in plot_recordings.split(",") if name.strip()]
            if isinstance(plot_recordings, str)
            else list(plot_recordings)
        )
        unknown = [name for name in wanted if name not in names]
        if unknown:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise ConfigError(f"--plot-recordings: no recording {unknown[0]!r} in this partition (it has {shown})")
        return wanted
    return names[:plot_first]


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


# --------------------------------------------------------------------------- the evaluation


def run(
    run_dir,
    partition=features.DEVEL,
    corrupt=None,
    corrupt_mode=None,
    *,
    plot_recordings=None,
    plot_first=1,
    output_dir=None,
    seed=0,
    num_bins=diagnostics.NUM_BINS,
    verbose=True,
    uncertainty="native",
    mc_passes=20,
) -> dict:
    """Evaluates a finished run on one partition; returns the report written to `report.json`.

    Args:
        run_dir: path of a run directory written by `pipelines.train`.
        partition: str. A labelled partition of the run's data. Defaults to "devel".
        corrupt: optional str `MODALITY:FRACTION` (e.g. "visual:0.5"): corrupt that share of the
            modality's frames in consecutive blocks and report the scores next to the clean ones.
        corrupt_mode: "noise", "zeros", "swap" or "face_mask" (see `pipelines.data.corrupt`). Defaults to
            "face_mask" for the visual modality of a raw-mode run (the paper's face masking), else "noise".
        plot_recordings: optional comma-separated names (or list) of recordings to draw timelines of.
        plot_first: int. Without `plot_recordings`, draw the first N recordings. Defaults to 1.
        output_dir: folder for the evaluation folders. Defaults to `<run_dir>/evaluation`.
        seed: int. Seed of the corruption blocks and noise. Defaults to 0.
        num_bins: int. Bins of the calibration error and reliability diagrams. Defaults to 10.
        verbose: bool. Print the tables. Defaults to True.
        uncertainty: "native" (the model's own score) or "mc_dropout" (`mc_passes` stochastic passes,
            dropout on; the scores are then those of the passes' mean): the per-frame std of a
            regression run, calibrated on the validation partition (`pipelines.uncertainty`).

    Returns:
        dict: the report (also in `report.json`; `report["output_dir"]` is the folder written).
    """
    run_dir = Path(run_dir)
    config, artifact_dir, manifest = open_run(run_dir)
    check_partition(manifest, partition, artifact_dir)
    corruption = corruption_of(corrupt, corrupt_mode, raw=config.mode == "raw")
    if num_bins < 1:
        raise ConfigError(f"--bins must be >= 1, got {num_bins}")
    if plot_first < 0:
        raise ConfigError(f"--plot-first must be >= 0, got {plot_first}")
    task = config.task
    validation = config.training.validation_partition
    sequence_level = bool(manifest["partitions"][partition].get("sequence_level", False))
    from pipelines.evaluation import uncertainty_report, uncertainty_scores

    if uncertainty != "native" and (task != "regression" or sequence_level):
        raise ConfigError("--uncertainty mc_dropout applies to frame-level regression runs")
    predict = uncertainty_scores.predictor(uncertainty, passes=mc_passes, seed=seed)

    from pipelines.components import input_pipeline  # TensorFlow starts here, after the checks above
    from pipelines.evaluation import scoring as evaluation  # TensorFlow starts here, after the checks above

    recordings = list(input_pipeline.iter_recordings(artifact_dir, partition))
    if not recordings:
        raise DataError(f"partition {partition!r} holds no recordings", artifact_dir / "manifest.json")
    names = [recording["name"] for recording in recordings]
    to_plot = _select_plots(names, plot_recordings, plot_first)
    out_dir = Path(output_dir) if output_dir else run_dir / "evaluation"
    out_dir = out_dir / output_folder_name(partition, corruption)

    infer, _ = load_inference_model(run_dir)
    from pipelines.data import label_delay
    from pipelines.runs.folders import training_delay_frames

    delay = training_delay_frames(config, artifact_dir)  # outputs go back onto the labels' timeline
    clean = list(
        label_delay.shift_predictions(
            predict(infer, recordings, progress=f"predict {partition}", total=len(recordings)), delay
        )
    )
    evaluated = clean
    if corruption:
        modality, fraction, mode = corruption
        evaluated = list(
            label_delay.shift_predictions(
                predict(
                    infer,
                    corrupt_lib.corrupt_recordings(
                        recordings, modality, fraction, mode=mode, seed=seed, hop=float(manifest.get("hop") or 0.1)
                    ),
                    progress=f"predict {partition} ({modality} corrupted)",
                    total=len(recordings),
                ),
                delay,
            )
        )

    temperatures = None
    if task == "classification":
        val_predictions = clean if validation == partition else None
        temperatures = fit_temperatures(infer, artifact_dir, manifest, validation, delay, val_predictions)
    scores, _ = evaluation.score_partition(
        evaluated, task=task, sequence_level=sequence_level, temperatures=temperatures
    )
    clean_scores = (
        scores
        if corruption is None
        else evaluation.score_partition(clean, task=task, sequence_level=sequence_level, temperatures=temperatures)[0]
    )

    report = _report(run_dir, config, partition, sequence_level, evaluated, corruption, seed, out_dir)
    report.update(scores=scores, scores_clean=clean_scores)
    if temperatures is not None:
        report["temperatures"] = {"fitted_on": validation, **temperatures}
    from pipelines.evaluation import fusion_guard as reliability_lib

    report["fused_below_branch"] = [
        {"dimension": dim, "branch": branch, "fused": fused, "branch_score": value}
        for dim, branch, fused, value in reliability_lib.fused_losses(scores, task)
    ]

    files = report["files"]
    if task == "regression" and not sequence_level:
        files += uncertainty_report.evaluate_section(
            report,
            run_dir,
            infer,
            config,
            artifact_dir,
            evaluated,
            out_dir,
            uncertainty,
            passes=mc_passes,
            seed=seed,
            verbose=verbose,
        )
        if uncertainty == "native":
            from pipelines.evaluation import interval_report

            interval_report.conformal_section(report, run_dir, clean, evaluated, corruption, verbose)
    files += _write_tables_and_figures(report, evaluated, temperatures, num_bins, to_plot, out_dir)

    pause_point("evaluate.partial")
    return report_lib.write_report(report, report_lib.format_report(report), out_dir, verbose)


def _report(run_dir, config, partition, sequence_level, evaluated, corruption, seed, out_dir) -> dict:
    """The report's description of the evaluation and its diagnostics (the scores are added by `run`)."""
    task, convention = config.task, config.model.weight_convention
    if corruption is not None:
        modality, fraction, mode = corruption
        corrupted = int(sum(r[f"{modality}_corrupted_eval"].sum() for r in evaluated))
        corruption = {
            "modality": modality,
            "fraction": fraction,
            "mode": mode,
            "seed": seed,
            "num_frames_corrupted": corrupted,
        }
    return {
        "run_dir": str(run_dir),
        "model": config.model.name,
        "task": task,
        "partition": partition,
        "sequence_level": sequence_level,
        "num_recordings": len(evaluated),
        "num_frames": int(sum(len(r["outputs"][features.VALENCE]) for r in evaluated)),
        "corruption": corruption,
        "weight_convention": convention,
        "uncertainty": diagnostics.uncertainty_diagnostics(evaluated, task, convention),
        "fusion_weights": diagnostics.weight_diagnostics(evaluated),
        "files": [],
        "output_dir": str(out_dir),
    }


def corruption_of(corrupt, corrupt_mode, *, raw: bool):
    """(modality, fraction, mode) of `--corrupt MODALITY:FRACTION` and `--corrupt-mode`, or None;
    ConfigError on a bad combination."""
    if not corrupt:
        return None
    modality, fraction = corrupt_lib.parse_spec(corrupt)
    if corrupt_mode is None:
        corrupt_mode = corrupt_lib.default_mode(modality, raw)
    if corrupt_mode == "face_mask" and not (raw and modality == features.VISUAL):
        raise ConfigError("--corrupt-mode face_mask applies to the faces of a raw-mode run (--corrupt visual:...)")
    if corrupt_mode not in corrupt_lib.MODES:
        raise ConfigError(f"--corrupt-mode must be one of {', '.join(corrupt_lib.MODES)}, got {corrupt_mode!r}")
    return modality, fraction, corrupt_mode


def fit_temperatures(infer, artifact_dir, manifest, validation, delay, predictions=None) -> dict:
    """Temperature scaling of a classification run, fitted on the validation partition (its
    `predictions` when already computed)."""
    from pipelines.components import input_pipeline
    from pipelines.data import label_delay
    from pipelines.evaluation import scoring as evaluation

    check_partition(manifest, validation, artifact_dir)
    if predictions is None:
        recordings = input_pipeline.iter_recordings(artifact_dir, validation)
        predictions = evaluation.predict_recordings(infer, recordings, progress=f"predict {validation}")
        predictions = list(label_delay.shift_predictions(predictions, delay))
    sequence_level = bool(manifest["partitions"][validation].get("sequence_level", False))
    return evaluation.score_partition(predictions, task="classification", sequence_level=sequence_level)[1]


def _write_tables_and_figures(report, evaluated, temperatures, num_bins, to_plot, out_dir) -> list:
    """Per-recording scores, reliability diagrams (classification) and timelines; returns the files."""
    task, sequence_level, files = report["task"], report["sequence_level"], []
    if not sequence_level:
        rows = diagnostics.per_recording_scores(evaluated, task)
        report["per_recording"] = rows
        import pandas as pd

        write_text_atomic(out_dir / "per_recording.csv", pd.DataFrame(rows).to_csv(index=False, float_format="%.6f"))
        files.append("per_recording.csv")
    if task == "classification":
        report["reliability"] = diagnostics.reliability(evaluated, temperatures, sequence_level, num_bins)
        for key, entry in report["reliability"].items():
            name = f"reliability_{key}.png"
            title = f"{report['model']} {report['partition']}: {key}"
            write_bytes_atomic(out_dir / name, figures.plot_reliability(entry, title))
            files.append(name)
    by_name = {recording["name"]: recording for recording in evaluated}
    for name in to_plot:
        file_name = f"timeline_{_file_name(name)}.png"
        write_bytes_atomic(out_dir / file_name, figures.plot_timeline(by_name[name]))
        files.append(file_name)
    return files
