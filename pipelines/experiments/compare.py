"""Comparing runs: `python -m pipelines.compare RUN_A RUN_B ... [--partition devel] [--metric ccc_mean]`.

Prints the runs' `metrics.json` figures side by side and, for every pair of runs, a paired t-test
(`scipy.stats.ttest_rel`) over the per-recording scores of one partition (paper Table 10). The
per-recording scores are computed from each run's `predictions/<partition>/<name>.csv` against the
labels of the run's data artefacts, so the runs must have been trained on the same artefacts.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np

from pipelines.config.settings import resolve_saved
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import finite_or_none, read_json, write_json_atomic
from pipelines.data import features
from pipelines.runs.folders import artifact_dir_of

METRICS = {
    "regression": ("ccc_mean", "ccc_valence", "ccc_arousal"),
    "classification": ("f1_macro", "f1_valence", "f1_arousal"),
}
TABLE_COLUMNS = {
    "regression": ("ccc_valence", "ccc_arousal", "ccc_mean"),
    "classification": ("precision_macro", "recall_macro", "f1_macro", "ece_mean", "ece_ts_mean"),
}
ALPHA = 0.05


# --------------------------------------------------------------------------- runs


def load_run(run_dir) -> dict:
    """A finished run: its config, metrics, data artefact directory and that data's fingerprint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("run directory not found", run_dir)
    for name in ("config.json", "metrics.json"):
        if not (run_dir / name).is_file():
            raise DataError(f"the run has not finished (no {name}); train it to the end first", run_dir)
    try:
        config = read_json(run_dir / "config.json")
        metrics = read_json(run_dir / "metrics.json")
    except ValueError as error:
        raise DataError(f"unreadable run files ({error})", run_dir) from None
    config = resolve_saved(config, run_dir / "config.json")
    artifact_dir = artifact_dir_of(config, run_dir)
    manifest = read_json(artifact_dir / "manifest.json")
    return {
        "run_dir": run_dir,
        "config": config,
        "metrics": metrics,
        "task": config.task,
        "artifact_dir": artifact_dir,
        "fingerprint": manifest.get("fingerprint"),
        "manifest": manifest,
    }


def check_comparable(runs, partition):
    """Refuses runs of different tasks, data artefacts, or without scores for `partition`."""
    first = runs[0]
    for run in runs:
        if run["task"] != first["task"]:
            raise ConfigError(
                f"cannot compare a {first['task']} run ({first['run_dir']}) with a {run['task']} run ({run['run_dir']})"
            )
        same_data = run["artifact_dir"].resolve() == first["artifact_dir"].resolve() or (
            run["fingerprint"] is not None and run["fingerprint"] == first["fingerprint"]
        )
        if not same_data:
            raise ConfigError(
                f"{run['run_dir']} and {first['run_dir']} were trained on different data artefacts "
                f"({run['artifact_dir']} vs {first['artifact_dir']}); per-recording scores can only be "
                "paired on the same recordings"
            )
        if partition not in run["metrics"]:
            have = ", ".join(sorted(run["metrics"])) or "none"
            raise ConfigError(f"{run['run_dir']} has no scores for partition {partition!r} (it has {have})")


def read_prediction_csv(path: Path) -> dict:
    """One AVEC-format prediction file (`name;timestamp;arousal;valence`) as float arrays."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep=";")
    except (OSError, ValueError) as error:
        raise DataError(f"unreadable prediction file ({str(error).splitlines()[0]})", path) from None
    missing = [key for key in features.LABEL_KEYS if key not in table.columns]
    if missing:
        raise DataError(f"prediction file has no column {missing[0]!r} (expected name;timestamp;arousal;valence)", path)
    return {key: table[key].to_numpy(np.float64) for key in features.LABEL_KEYS}


def partition_labels(artifact_dir, partition) -> dict:
    """{recording name: {"valence": [N], "arousal": [N]}} of a labelled frame-level partition."""
    from pipelines.components import input_pipeline

    labels = {}
    for recording in input_pipeline.iter_recordings(artifact_dir, partition):
        if recording["sequence_level"]:
            raise DataError(
                "paired tests need per-recording frame predictions; this corpus is utterance-level",
                Path(artifact_dir) / "manifest.json",
            )
        if recording[features.VALENCE] is None:
            raise DataError(f"partition {partition!r} has no labels", Path(artifact_dir) / "manifest.json")
        labels[recording["name"]] = {key: np.asarray(recording[key], np.float64) for key in features.LABEL_KEYS}
    return labels


def per_recording_scores(run_dir, partition, labels, task, metric) -> dict:
    """{recording name: score} from a run's prediction CSVs.

    Regression: CCC (AVEC's, `cold_keras.metrics.ccc`) of the recording's frames, one dimension or the mean of both
    (`ccc_mean`). Classification: macro F1 of the predicted bins (-1/0/1 in the CSV) against the
    label bins, one dimension or the mean of both (`f1_macro`).
    """
    from cold_keras import metrics as cmetrics

    folder = Path(run_dir) / "predictions" / partition
    if not folder.is_dir():
        raise DataError(f"no predictions for partition {partition!r}", folder)
    dims = [dim for dim in features.LABEL_KEYS if metric.endswith(dim)] or list(features.LABEL_KEYS)
    scores = {}
    for name, label in labels.items():
        path = folder / f"{name}.csv"
        if not path.is_file():
            raise DataError(f"no prediction for recording {name!r}", path)
        prediction = read_prediction_csv(path)
        values = []
        for dim in dims:
            if len(prediction[dim]) != len(label[dim]):
                raise DataError(f"{len(prediction[dim])} predicted frames for {len(label[dim])} labelled ones", path)
            if task == "regression":
                values.append(cmetrics.ccc(label[dim], prediction[dim]))
            else:
                from pipelines.evaluation import scoring as evaluation

                predicted = np.rint(prediction[dim]).astype(np.int64) + 1
                values.append(
                    cmetrics.precision_recall_f1(evaluation.to_classes(label[dim]), predicted, features.NUM_CLASSES)[2]
                )
        scores[name] = float(np.mean(values))
    return scores


def paired_test(a, b) -> dict:
    """Paired t-test of two runs' per-recording scores (same recordings, same order)."""
    from scipy.stats import ttest_rel

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = int(a.size)
    difference = float(np.mean(a - b)) if n else float("nan")
    if n < 2 or np.all(a - b == (a - b)[0]):
        # Fewer than two pairs, or a constant difference: the t statistic is undefined.
        return {"n": n, "mean_difference": difference, "t": float("nan"), "p": float("nan")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ttest_rel(a, b)
    return {"n": n, "mean_difference": difference, "t": float(result.statistic), "p": float(result.pvalue)}


def _labels_of(runs):
    names = [run["run_dir"].name for run in runs]
    if len(set(names)) < len(names):
        names = [str(run["run_dir"]) for run in runs]
    return names


# --------------------------------------------------------------------------- the comparison


def run(run_dirs, partition=features.DEVEL, metric=None, *, branch="av", output=None, verbose=True) -> dict:
    """Compares finished runs on one partition; returns the comparison as a dict.

    Args:
        run_dirs: list of at least two run directories written by `pipelines.train`.
        partition: str. Defaults to "devel".
        metric: per-recording score of the t-tests: `ccc_mean`, `ccc_valence`, `ccc_arousal`
            (regression) or `f1_macro`, `f1_valence`, `f1_arousal` (classification). Defaults to
            the first of these for the runs' task.
        branch: str. Branch of `metrics.json` shown in the table. Defaults to "av".
        output: optional path of a JSON file to write the comparison to.
        verbose: bool. Print the tables. Defaults to True.

    Returns:
        dict with `partition`, `metric`, `runs` (label, run_dir, figures, per_recording) and `tests`
        (one entry per pair: a, b, n, mean_difference, t, p).
    """
    if len(run_dirs) < 2:
        raise ConfigError("compare needs at least two run directories")
    seen = set()
    for run_dir in run_dirs:
        key = Path(run_dir).resolve()
        if key in seen:
            raise ConfigError(f"{run_dir} is listed twice")
        seen.add(key)
    runs = [load_run(run_dir) for run_dir in run_dirs]
    task = runs[0]["task"]
    metric = {"f1_mean": "f1_macro"}.get(metric, metric) or METRICS[task][0]  # f1_mean: the earlier name
    if metric not in METRICS.get(task, ()):
        raise ConfigError(f"--metric for {task} runs must be one of {', '.join(METRICS[task])}, got {metric!r}")
    check_comparable(runs, partition)
    labels = partition_labels(runs[0]["artifact_dir"], partition)
    if not labels:
        raise DataError(f"partition {partition!r} holds no recordings", runs[0]["artifact_dir"] / "manifest.json")
    names = sorted(labels)
    report = {"partition": partition, "task": task, "metric": metric, "branch": branch, "runs": [], "tests": []}
    for label, run in zip(_labels_of(runs), runs):
        scores = per_recording_scores(run["run_dir"], partition, labels, task, metric)
        report["runs"].append(
            {
                "label": label,
                "run_dir": str(run["run_dir"]),
                "model": run["config"].model.name,
                "figures": run["metrics"][partition].get(branch, {}),
                "per_recording": {name: scores[name] for name in names},
            }
        )
    for first, second in itertools.combinations(report["runs"], 2):
        a = [first["per_recording"][name] for name in names]
        b = [second["per_recording"][name] for name in names]
        report["tests"].append({"a": first["label"], "b": second["label"], **paired_test(a, b)})
    if output:
        write_json_atomic(output, finite_or_none(report))
    if verbose:
        print(format_comparison(report))
    return report


def _cell(value, width, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def format_comparison(report) -> str:
    """The side-by-side table and the paired tests as text."""
    columns = TABLE_COLUMNS[report["task"]]
    metric = report["metric"]
    width = max(12, *(len(run["label"]) for run in report["runs"]))
    header = f"{'run':<{width}} {'model':<17} " + " ".join(f"{c:>15}" for c in columns) + f" {'per-rec ' + metric:>20}"
    lines = [
        f"partition {report['partition']}, branch {report['branch']} (metrics.json); per-recording {metric} "
        f"mean ± std over {len(report['runs'][0]['per_recording'])} recordings",
        header,
        "-" * len(header),
    ]
    for run in report["runs"]:
        values = np.array(list(run["per_recording"].values()), np.float64)
        spread = f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if values.size > 1 else 0.0:.4f}"
        cells = " ".join(_cell(run["figures"].get(c), 15) for c in columns)
        lines.append(f"{run['label']:<{width}} {run['model']:<17} {cells} {spread:>20}")
    header = f"{'A':<{width}} {'B':<{width}} {'n':>4} {'mean(A-B)':>10} {'t':>9} {'p':>9}"
    lines += [
        "",
        f"paired t-tests over per-recording {metric} (scipy.stats.ttest_rel; * p < {ALPHA})",
        header,
        "-" * len(header),
    ]
    for test in report["tests"]:
        mark = " *" if test["p"] is not None and math.isfinite(test["p"]) and test["p"] < ALPHA else ""
        lines.append(
            f"{test['a']:<{width}} {test['b']:<{width}} {test['n']:>4} {_cell(test['mean_difference'], 10)} "
            f"{_cell(test['t'], 9, 3)} {_cell(test['p'], 9)}{mark}"
        )
    return "\n".join(lines)
