"""Evaluator: `python -m pipelines.evaluate --run-dir RUN [--partition devel] [--corrupt visual:0.5] ...`.

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
  evaluator's own corruption).
* Predictive uncertainty (frame-level regression): a per-frame std in label units from the run's
  validation-fitted calibration (`pipelines.uncertainty`; `--uncertainty mc_dropout` for MC dropout),
  scored by NLL, interval coverage and width, calibration curve, ENCE, sparsification (AUSE) and the
  reject-option CCC, with `uncertainty_*.png` figures and `frames/<recording>.csv` holding the std.

`report.json` is written last, so a folder holding it is a complete evaluation.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import warnings
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.core.io_utils import finite_or_none, write_bytes_atomic, write_json_atomic, write_text_atomic
from pipelines.core.pause import pause_point
from pipelines.data import corrupt as corrupt_lib
from pipelines.data import features
from pipelines.runs.folders import load_inference_model, open_run

NUM_BINS = 10
# Expected sign of spearman(1/||sigma||, error) when the calibration term works as trained: the
# paper's convention makes s = 1/||sigma|| follow the error, the `uncertainty` one makes ||sigma|| follow it.
EXPECTED_SIGN = {"informativeness": 1.0, "uncertainty": -1.0}


# --------------------------------------------------------------------------- statistics


def roc_auc(scores, positives) -> float:
    """Area under the ROC curve of `scores` as a detector of `positives` (Mann-Whitney U).

        AUC = (R_+ - n_+ (n_+ + 1) / 2) / (n_+ n_-)

    with R_+ the sum of the positives' ranks among all scores (average ranks for ties, so a tie
    between a positive and a negative counts one half). Equals the fraction of (positive, negative)
    pairs in which the positive scores higher, ties counting 1/2.

    Args:
        scores: array-like of floats. Higher means "more likely positive".
        positives: bool array-like of the same size.

    Returns:
        float in [0, 1]; NaN without a positive or a negative, or with a NaN score.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).reshape(-1)
    positives = np.asarray(positives, bool).reshape(-1)
    if scores.size != positives.size:
        raise ValueError(f"roc_auc needs one flag per score, got {scores.size} scores and {positives.size} flags")
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0 or np.isnan(scores).any():
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(x, y):
    """Spearman rank correlation and its two-sided p-value; (NaN, NaN) for constant or < 3 values."""
    from scipy.stats import spearmanr

    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _frame_labels(recording, dim, num_frames):
    # Sequence-level corpora broadcast the utterance label to every frame, as the losses do.
    return np.broadcast_to(np.asarray(recording[dim], np.float64), (num_frames,))


def frame_errors(recording, modality, task) -> np.ndarray:
    """Per-frame distance of one modality's prediction: the quantity the calibration term ranks.

    Regression: squared error averaged over valence and arousal. Classification: cross-entropy of
    the unimodal logits with the label's bin, averaged over the two dimensions.
    """
    from pipelines.evaluation import scoring as evaluation

    outputs = recording["outputs"]
    num_frames = len(outputs[f"{modality}_{features.VALENCE}"])
    per_dim = []
    for dim in features.LABEL_KEYS:
        labels = _frame_labels(recording, dim, num_frames)
        prediction = np.asarray(outputs[f"{modality}_{dim}"], np.float64)
        if task == "regression":
            per_dim.append((labels - prediction) ** 2)
        else:
            classes = evaluation.to_classes(labels)
            per_dim.append(-np.take_along_axis(_log_softmax(prediction), classes[:, None], axis=-1)[:, 0])
    return np.mean(per_dim, axis=0)


# --------------------------------------------------------------------------- diagnostics


def per_recording_scores(predictions, task) -> list:
    """One row per recording: CCC (regression) or macro F1 (classification) per branch and dimension.

    Returns:
        list of dicts with `name`, `num_frames` and `<branch>_<metric>_<dimension>` plus
        `<branch>_ccc_mean` / `<branch>_f1_macro` (the names of metrics.json; metric `ccc` or `f1`).
    """
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import scoring as evaluation

    metric = "ccc" if task == "regression" else "f1"
    rows = []
    for recording in predictions:
        outputs = recording["outputs"]
        row = {"name": recording["name"], "num_frames": int(len(outputs[features.VALENCE]))}
        for branch in evaluation.branches_of(outputs):
            prefix = evaluation.BRANCH_PREFIXES[branch]
            values = []
            for dim in features.LABEL_KEYS:
                labels = np.asarray(recording[dim], np.float64).reshape(-1)
                prediction = np.asarray(outputs[f"{prefix}{dim}"])
                if task == "regression":
                    value = cmetrics.ccc(labels, prediction)
                else:
                    value = cmetrics.precision_recall_f1(
                        evaluation.to_classes(labels), prediction.argmax(axis=-1), features.NUM_CLASSES
                    )[2]
                row[f"{branch}_{metric}_{dim}"] = float(value)
                values.append(value)
            row[f"{branch}_{'ccc_mean' if task == 'regression' else 'f1_macro'}"] = float(np.mean(values))
        rows.append(row)
    return rows


def uncertainty_diagnostics(predictions, task, convention="informativeness") -> dict:
    """Per modality: rank correlation of the model's uncertainty with its own per-frame error.

    For every modality whose sigma norm and unimodal prediction the model outputs, over all frames of
    the partition: spearman(1/||sigma_m||, d_m) with d_m from `frame_errors`, and, when the model
    outputs fusion weights, spearman(w_m, d_m) (negative = the weight drops where the modality errs).
    """
    if not predictions:
        return {}
    outputs = predictions[0]["outputs"]
    expected = EXPECTED_SIGN.get(convention, 1.0)
    report = {}
    for modality in features.MODALITIES:
        sigma_key, weight_key = f"{modality}_sigma_norm", f"{modality}_weight"
        if sigma_key not in outputs or f"{modality}_{features.VALENCE}" not in outputs:
            continue
        inverse = np.concatenate([1.0 / np.asarray(r["outputs"][sigma_key], np.float64) for r in predictions])
        errors = np.concatenate([frame_errors(r, modality, task) for r in predictions])
        rho, p_value = spearman(inverse, errors)
        entry = {
            "spearman_inverse_sigma_vs_error": rho,
            "p_value": p_value,
            "num_frames": int(errors.size),
            "error": "squared error" if task == "regression" else "cross-entropy",
            "meaning": _sign_meaning(rho, expected, convention),
        }
        if weight_key in outputs:
            weights = np.concatenate([np.asarray(r["outputs"][weight_key], np.float64) for r in predictions])
            entry["spearman_weight_vs_error"], entry["p_value_weight"] = spearman(weights, errors)
        report[modality] = entry
    return report


def _sign_meaning(rho, expected, convention):
    if not math.isfinite(rho):
        return "undefined (constant values or fewer than 3 frames)"
    direction = (
        "positive: frames with a larger 1/||sigma|| have larger errors"
        if rho > 0
        else "negative: frames with a larger 1/||sigma|| have smaller errors (||sigma|| grows with the error)"
        if rho < 0
        else "zero: no monotonic relation"
    )
    trained = "rise" if expected > 0 else "fall"
    verdict = "as" if rho * expected > 0 else "unlike what"
    return (
        f"{direction}; {verdict} the {convention} convention trains for (1/||sigma|| should {trained} with the error)"
    )


def _concat_flags(predictions, key):
    if not all(r.get(key) is not None for r in predictions):
        return None
    return np.concatenate([np.asarray(r[key], bool).reshape(-1) for r in predictions])


def weight_diagnostics(predictions) -> dict:
    """Fusion weights on corrupted vs clean frames and the AUC of (1 - w_m) as a corruption detector.

    Sources of the corrupted frames of modality m: `corpus` (`<m>_corrupted`, the synthetic corpus's
    ground truth) and `evaluator` (`<m>_corrupted_eval`, from `--corrupt`). Clean frames are frames
    that neither source corrupted, so a frame corrupted by the other source is left out of both groups.

    Returns:
        {source: {modality: {mean_weight_corrupted, mean_weight_clean, auc, num_corrupted, num_clean}}}.
    """
    if not predictions:
        return {}
    report = {}
    for modality in features.MODALITIES:
        weight_key = f"{modality}_weight"
        if weight_key not in predictions[0]["outputs"]:
            continue
        weights = np.concatenate([np.asarray(r["outputs"][weight_key], np.float64) for r in predictions])
        sources = {
            "corpus": _concat_flags(predictions, f"{modality}_corrupted"),
            "evaluator": _concat_flags(predictions, f"{modality}_corrupted_eval"),
        }
        for source, flags in sources.items():
            if flags is None:
                continue
            other = sources["evaluator" if source == "corpus" else "corpus"]
            clean = ~flags if other is None else ~flags & ~other
            keep = flags | clean
            entry = {
                "mean_weight_corrupted": float(weights[flags].mean()) if flags.any() else float("nan"),
                "mean_weight_clean": float(weights[clean].mean()) if clean.any() else float("nan"),
                "auc": roc_auc(1.0 - weights[keep], flags[keep]),
                "num_corrupted": int(flags.sum()),
                "num_clean": int(clean.sum()),
            }
            report.setdefault(source, {})[modality] = entry
    return report


def reliability(predictions, temperatures, sequence_level, num_bins=NUM_BINS) -> dict:
    """Reliability-diagram bins per branch and dimension, before and after temperature scaling."""
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import scoring as evaluation

    report = {}
    for branch in evaluation.branches_of(predictions[0]["outputs"]):
        prefix = evaluation.BRANCH_PREFIXES[branch]
        for dim in features.LABEL_KEYS:
            y, logits = evaluation.collect(predictions, f"{prefix}{dim}", dim, sequence_level)
            if y is None:
                continue
            logits = np.asarray(logits, np.float64).reshape(-1, features.NUM_CLASSES)
            labels = evaluation.to_classes(y)
            temperature = float(temperatures[f"{branch}_{dim}"])
            entry = {"temperature": temperature}
            for name, scaled in (("before", logits), ("after", cmetrics.apply_temperature(logits, temperature))):
                probs = np.exp(_log_softmax(scaled))
                bins = cmetrics.reliability_bins(probs, labels, num_bins)
                entry[name] = {
                    "confidence": bins.confidence.tolist(),
                    "accuracy": bins.accuracy.tolist(),
                    "count": bins.count.tolist(),
                    "ece": cmetrics.expected_calibration_error(probs, labels, num_bins),
                }
            report[f"{branch}_{dim}"] = entry
    return report


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(entry, title) -> bytes:
    """Reliability diagram (paper Fig. 7): accuracy per confidence bin, before and after scaling."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
    for ax, name in zip(axes, ("before", "after")):
        bins = entry[name]
        num_bins = len(bins["count"])
        edges = np.linspace(0.0, 1.0, num_bins + 1)
        accuracy = np.nan_to_num(np.asarray(bins["accuracy"], np.float64))
        confidence = np.asarray(bins["confidence"], np.float64)
        filled = np.asarray(bins["count"]) > 0
        ax.bar(
            edges[:-1],
            accuracy,
            width=1.0 / num_bins,
            align="edge",
            color="tab:blue",
            edgecolor="black",
            lw=0.5,
            label="accuracy",
        )
        gap = np.where(filled, confidence - accuracy, 0.0)
        ax.bar(
            edges[:-1],
            gap,
            bottom=accuracy,
            width=1.0 / num_bins,
            align="edge",
            color="tab:red",
            alpha=0.3,
            edgecolor="tab:red",
            lw=0.5,
            label="gap to confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        label = "no scaling" if name == "before" else f"T = {entry['temperature']:.3g}"
        ax.set_title(f"{label}: ECE {bins['ece']:.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.legend(loc="upper left", fontsize=7)
    axes[0].set_ylabel("accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def plot_timeline(recording) -> bytes:
    """Predictions and fusion weights of one recording over time, corrupted frames shaded."""
    from pipelines.evaluation.figures import plot_recording

    outputs = {}
    for key, value in recording["outputs"].items():
        value = np.asarray(value, np.float64)
        if value.ndim == 2 and value.shape[-1] == features.NUM_CLASSES:
            # Classification: the expected bin value in [-1, 1], comparable with the label.
            value = np.exp(_log_softmax(value)) @ np.array([-1.0, 0.0, 1.0])
        outputs[key] = value
    shown = dict(recording)
    for modality in features.MODALITIES:
        flags = [
            np.asarray(recording[key], bool)
            for key in (f"{modality}_corrupted", f"{modality}_corrupted_eval")
            if recording.get(key) is not None
        ]
        if flags:
            shown[f"{modality}_corrupted"] = np.logical_or.reduce(flags)
    return plot_recording(shown, outputs, float(recording.get("hop", 0.1)))


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


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
    num_bins=NUM_BINS,
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
    corruption = corruption_of(corrupt, corrupt_mode, raw=config["mode"] == "raw")
    if num_bins < 1:
        raise ConfigError(f"--bins must be >= 1, got {num_bins}")
    if plot_first < 0:
        raise ConfigError(f"--plot-first must be >= 0, got {plot_first}")
    task = config["task"]
    validation = config["training"]["validation_partition"]
    sequence_level = bool(manifest["partitions"][partition].get("sequence_level", False))
    from pipelines.evaluation import uncertainty as uncertainty_lib

    if uncertainty != "native" and (task != "regression" or sequence_level):
        raise ConfigError("--uncertainty mc_dropout applies to frame-level regression runs")
    predict = uncertainty_lib.predictor(uncertainty, passes=mc_passes, seed=seed)

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
        files += uncertainty_lib.evaluate_section(
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
    files += _write_tables_and_figures(report, evaluated, temperatures, num_bins, to_plot, out_dir)

    pause_point("evaluate.partial")
    return write_report(report, format_report(report), out_dir, verbose)


def write_report(report, text, out_dir, verbose) -> dict:
    """Writes `report.txt` (`text`) and `report.json` (non-finite numbers as null) into `out_dir`,
    adds `report.txt` to `report["files"]`, prints the text when `verbose`; returns the JSON report."""
    write_text_atomic(out_dir / "report.txt", text + "\n")
    report["files"].append("report.txt")
    report = finite_or_none(report)
    write_json_atomic(out_dir / "report.json", report)
    if verbose:
        print(text)
        print(f"\nwritten: {out_dir}/ ({', '.join(report['files'])}, report.json)")
    return report


def _report(run_dir, config, partition, sequence_level, evaluated, corruption, seed, out_dir) -> dict:
    """The report's description of the evaluation and its diagnostics (the scores are added by `run`)."""
    task, convention = config["task"], config["model"]["weight_convention"]
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
        "model": config["model"]["name"],
        "task": task,
        "partition": partition,
        "sequence_level": sequence_level,
        "num_recordings": len(evaluated),
        "num_frames": int(sum(len(r["outputs"][features.VALENCE]) for r in evaluated)),
        "corruption": corruption,
        "weight_convention": convention,
        "uncertainty": uncertainty_diagnostics(evaluated, task, convention),
        "fusion_weights": weight_diagnostics(evaluated),
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
        rows = per_recording_scores(evaluated, task)
        report["per_recording"] = rows
        import pandas as pd

        write_text_atomic(out_dir / "per_recording.csv", pd.DataFrame(rows).to_csv(index=False, float_format="%.6f"))
        files.append("per_recording.csv")
    if task == "classification":
        report["reliability"] = reliability(evaluated, temperatures, sequence_level, num_bins)
        for key, entry in report["reliability"].items():
            name = f"reliability_{key}.png"
            title = f"{report['model']} {report['partition']}: {key}"
            write_bytes_atomic(out_dir / name, plot_reliability(entry, title))
            files.append(name)
    by_name = {recording["name"]: recording for recording in evaluated}
    for name in to_plot:
        file_name = f"timeline_{_file_name(name)}.png"
        write_bytes_atomic(out_dir / file_name, plot_timeline(by_name[name]))
        files.append(file_name)
    return files


# --------------------------------------------------------------------------- text


def _cell(value, width=12, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def robustness_table(clean, corrupted, task) -> str:
    """Clean vs corrupted scores per branch (paper Table 7 style)."""
    keys = (
        [f"ccc_{d}" for d in features.LABEL_KEYS] + ["ccc_mean"]
        if task == "regression"
        else [f"f1_{d}" for d in features.LABEL_KEYS] + ["f1_macro"]
    )
    header = f"{'branch':<7} {'metric':<12} {'clean':>10} {'corrupted':>10} {'change':>10}"
    lines = [header, "-" * len(header)]
    for branch, row in corrupted.items():
        for key in keys:
            before, after = clean.get(branch, {}).get(key), row.get(key)
            change = None if before is None or after is None else after - before
            lines.append(f"{branch:<7} {key:<12} {_cell(before, 10)} {_cell(after, 10)} {_cell(change, 10)}")
    return "\n".join(lines)


def format_report(report) -> str:
    """The report's tables as text (what the command prints and `report.txt` holds)."""
    from pipelines.evaluation import scoring as evaluation

    task = report["task"]
    corruption = report["corruption"]
    condition = (
        "clean"
        if corruption is None
        else (
            f"{corruption['modality']} {corruption['fraction']:.0%} corrupted ({corruption['mode']}, "
            f"{corruption['num_frames_corrupted']} frames)"
        )
    )
    lines = [
        f"{report['model']} ({task}) on {report['partition']}, {condition}: "
        f"{report['num_recordings']} recordings, {report['num_frames']} frames",
        "",
    ]
    label = report["partition"] if corruption is None else f"{report['partition']}*"
    lines.append(evaluation.format_table({label: report["scores"]}, task))
    if corruption is not None:
        lines.append(f"  {label}: {report['partition']} with {condition}")
    if corruption is not None:
        lines += ["", f"robustness: {condition}", robustness_table(report["scores_clean"], report["scores"], task)]
    for entry in report.get("fused_below_branch") or []:
        lines.append(
            f"warning: the fused output loses to the {entry['branch']} branch on {entry['dimension']} "
            f"({entry['fused']:.3f} vs {entry['branch_score']:.3f})"
        )
    if "temperatures" in report:
        temps = ", ".join(f"{k} {v:.3g}" for k, v in report["temperatures"].items() if k != "fitted_on")
        lines += ["", f"temperature scaling fitted on {report['temperatures']['fitted_on']}: {temps}"]
    if report["uncertainty"]:
        convention = report["weight_convention"]
        trained = "rise" if EXPECTED_SIGN.get(convention, 1.0) > 0 else "fall"
        header = f"{'modality':<8} {'rho(1/|sigma|, err)':>20} {'p':>10} {'rho(w, err)':>12}  sign"
        lines += [
            "",
            f"uncertainty vs per-frame error (Spearman over frames; the {convention} convention trains "
            f"1/||sigma|| to {trained} with the error, and a weight should fall with it)",
            header,
            "-" * len(header),
        ]
        for modality, entry in report["uncertainty"].items():
            rho = entry["spearman_inverse_sigma_vs_error"]
            sign = (
                "undefined"
                if rho is None or not math.isfinite(rho)
                else "as trained"
                if rho * EXPECTED_SIGN.get(convention, 1.0) > 0
                else "opposite to training"
            )
            lines.append(
                f"{modality:<8} {_cell(rho, 20)} {_cell(entry['p_value'], 10, 3)} "
                f"{_cell(entry.get('spearman_weight_vs_error'))}  {sign}"
            )
    if report["fusion_weights"]:
        header = (
            f"{'corrupted by':<12} {'modality':<8} {'w corrupted':>12} {'w clean':>10} {'AUC(1-w)':>10} {'frames':>14}"
        )
        lines += ["", "fusion weight of a modality on its corrupted vs clean frames", header, "-" * len(header)]
        for source, by_modality in report["fusion_weights"].items():
            for modality, entry in by_modality.items():
                frames = f"{entry['num_corrupted']}/{entry['num_corrupted'] + entry['num_clean']}"
                lines.append(
                    f"{source:<12} {modality:<8} {_cell(entry['mean_weight_corrupted'])} "
                    f"{_cell(entry['mean_weight_clean'], 10)} {_cell(entry['auc'], 10)} {frames:>14}"
                )
        lines += [
            "  w corrupted, w clean: mean fusion weight of the modality on its corrupted / clean frames; "
            "AUC(1-w): area under the ROC curve of 1 - w as a detector of corrupted frames (0.5 = chance); "
            "frames a/b: a corrupted frames of b frames; corrupted by: corpus = the corrupted frames the "
            "synthetic corpus records, evaluator = those of --corrupt"
        ]
    if report.get("predictive_uncertainty"):
        from pipelines.evaluation import uncertainty as uncertainty_lib

        lines += ["", uncertainty_lib.format_section(report["predictive_uncertainty"])]
    if report.get("per_recording"):
        metric = "ccc_mean" if task == "regression" else "f1_macro"
        branches = [b for b in evaluation.BRANCH_PREFIXES if f"{b}_{metric}" in report["per_recording"][0]]
        header = f"{'recording':<20} {'frames':>7} " + " ".join(f"{b + ' ' + metric:>16}" for b in branches)
        lines += ["", "per recording", header, "-" * len(header)]
        for row in report["per_recording"]:
            cells = " ".join(_cell(row[f"{b}_{metric}"], 16) for b in branches)
            lines.append(f"{row['name']:<20} {row['num_frames']:>7} {cells}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.evaluate",
        description="Evaluate a trained run on one partition: scores, calibration, robustness to a corrupted "
        "modality, uncertainty diagnostics and figures. Example: python -m pipelines.evaluate "
        "--run-dir runs/synthetic_cold_fusion_regression --corrupt visual:0.5",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
    parser.add_argument("--partition", default=features.DEVEL, help="labelled partition to evaluate")
    parser.add_argument(
        "--corrupt",
        metavar="MODALITY:FRACTION",
        help="corrupt this share of a modality's frames in consecutive blocks, e.g. visual:0.5",
    )
    parser.add_argument(
        "--corrupt-mode",
        default=None,
        choices=corrupt_lib.MODES,
        help="noise: Gaussian noise; zeros: zeroed frames; swap: frames of another recording; "
        "face_mask: a mask over the lower half of the face (raw-mode runs); in-range "
        "corruptions of features: frozen (first frame held), drift (a slow offset), desync "
        "(frames 2-5 s earlier), dropout (the recording's mean frame). Default: "
        "face_mask for visual in a raw-mode run, noise otherwise",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruption")
    plots = parser.add_mutually_exclusive_group()
    plots.add_argument("--plot-recordings", metavar="NAME1,NAME2", help="draw timelines of these recordings")
    plots.add_argument("--plot-first", type=int, default=1, metavar="N", help="draw timelines of the first N")
    parser.add_argument("--bins", type=int, default=NUM_BINS, help="calibration bins")
    parser.add_argument("--output-dir", help="parent folder of the evaluation folders (default RUN/evaluation)")
    parser.add_argument(
        "--uncertainty",
        default="native",
        choices=("native", "mc_dropout"),
        help="per-frame std of a regression run: native = the model's own score (COLD's sigma, "
        "constant for other models), mc_dropout = std over --mc-passes stochastic passes "
        "with dropout on; either calibrated on the validation partition",
    )
    parser.add_argument("--mc-passes", type=int, default=20, help="stochastic passes of --uncertainty mc_dropout")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    # Checks only: a run directory that does not exist is reported by `run` (nothing is created for it).
    if args.output_dir:
        cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    else:  # the evaluation folders go into the run directory
        cli.check_output_dir(args.run_dir, "--run-dir", create=False)
        cli.check_output_dir(Path(args.run_dir) / "evaluation", "--run-dir (its evaluation folder)", create=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(libtensorflow_io|file system plugins).*")
        run(
            args.run_dir,
            args.partition,
            args.corrupt,
            args.corrupt_mode,
            plot_recordings=args.plot_recordings,
            plot_first=args.plot_first,
            output_dir=args.output_dir,
            seed=args.seed,
            num_bins=args.bins,
            uncertainty=args.uncertainty,
            mc_passes=args.mc_passes,
        )
