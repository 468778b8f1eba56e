"""The evaluator's predictive-uncertainty section: figures, text table, curves, per-frame CSVs.

`evaluate_section` reads (or fits) a run's calibration, scores the calibrated std with
`uncertainty_metrics` (NLL, interval coverage and width, calibration curve, ENCE, sparsification and
AUSE, reject-option CCC), draws the curves and writes `frames/<recording>.csv`; `format_section` is
its text. `compare_runs` puts the curves of several evaluated runs on one figure (`pipelines.compare
--uncertainty-plot`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.core.io_utils import read_json, write_bytes_atomic
from pipelines.data import features
from pipelines.evaluation.figures import plot_uncertainty_comparison, plot_uncertainty_curves
from pipelines.evaluation.uncertainty import (
    CALIBRATION_FILES,
    STD_SUFFIX,
    abs_errors,
    attach_std,
    calibration_for,
)
from pipelines.evaluation.uncertainty_scores import BRANCH_PREFIXES, DEFAULT_PASSES

# The figures (snake_case) of one branch and dimension, in table order.
METRIC_KEYS = (
    "nll",
    "picp_50",
    "width_50",
    "picp_90",
    "width_90",
    "picp_95",
    "width_95",
    "miscalibration_area",
    "ence",
    "ause",
    "ause_random",
    "reject_ccc_50",
)


# --------------------------------------------------------------------------- scoring


def uncertainty_metrics(predictions, calibration, *, num_steps=20) -> dict:
    """{"<branch>_<dim>": {figures of METRIC_KEYS..., "curves": {...}}} of calibrated predictions.

    Interval figures use the calibrated std; the ranking figures (sparsification, AUSE, reject-option
    CCC) rank frames by the model's score u, of which the std is a non-decreasing function (ranking by
    u keeps the order that the map's flat stretches would tie). `ause_random` is the AUSE of a random
    ranking (seed 0), the reference a useless uncertainty reaches.
    """
    from cold_keras import metrics as cmetrics

    if not predictions:
        return {}
    stds, scores = {}, {}
    for recording in predictions:
        outputs = recording["outputs"]
        for key, value in calibration.std(outputs).items():
            stds.setdefault(key, []).append(value)
        for key, value in calibration.scores(outputs).items():
            scores.setdefault(key, []).append(value)
    report = {}
    for key, entry in calibration.maps.items():
        branch, dim = key.split("_", 1)
        std_key = f"{BRANCH_PREFIXES[branch]}{dim}{STD_SUFFIX}"
        if std_key not in stds:
            continue
        errors, y, mu = abs_errors(predictions, key)
        if errors is None:
            continue
        std = np.concatenate(stds[std_key]).astype(np.float64)
        score = np.concatenate(scores[key])
        row = {"nll": cmetrics.gaussian_nll(y, mu, std)}
        for level in cmetrics.INTERVAL_LEVELS:
            picp, width = cmetrics.interval_coverage(y, mu, std, level)
            row[f"picp_{round(level * 100)}"], row[f"width_{round(level * 100)}"] = picp, width
        expected, observed = cmetrics.calibration_curve(y, mu, std)
        row["miscalibration_area"] = cmetrics.miscalibration_area(y, mu, std)
        row["ence"] = cmetrics.expected_normalized_calibration_error(y, mu, std)
        fractions, model_curve, oracle = cmetrics.sparsification_curve(y, mu, score, num_steps)
        row["ause"] = float(np.mean(model_curve - oracle))
        random_score = np.random.default_rng(0).permutation(score.size)
        row["ause_random"] = cmetrics.ause(y, mu, random_score, num_steps)
        rejected, kept_ccc = cmetrics.reject_option_ccc(y, mu, score)
        row["reject_ccc_50"] = float(kept_ccc[np.argmin(np.abs(rejected - 0.5))])
        row["ccc"] = float(cmetrics.ccc(y, mu))
        row["curves"] = {
            "calibration": {"expected": expected.tolist(), "observed": observed.tolist()},
            "sparsification": {
                "fraction_removed": fractions.tolist(),
                "model": model_curve.tolist(),
                "oracle": oracle.tolist(),
            },
            "reject_ccc": {"fraction_rejected": [0.0] + rejected.tolist(), "ccc": [row["ccc"]] + kept_ccc.tolist()},
        }
        report[key] = row
    return report


def format_metrics(section) -> str:
    """Text table of `uncertainty_metrics` (one row per branch and dimension)."""
    titles = {
        "nll": "NLL",
        "picp_50": "PICP50",
        "picp_90": "PICP90",
        "width_90": "width90",
        "picp_95": "PICP95",
        "miscalibration_area": "miscal",
        "ence": "ENCE",
        "ause": "AUSE",
        "ause_random": "AUSE rnd",
        "reject_ccc_50": "CCC@50%",
    }
    width = max([16] + [len(key) for key in section])
    header = f"{'output':<{width}} {'CCC':>8} " + " ".join(f"{t:>9}" for t in titles.values())
    lines = [header, "-" * len(header)]
    for key, row in section.items():
        cells = " ".join("        -" if row.get(k) is None else f"{row[k]:>9.4f}" for k in titles)
        lines.append(f"{key:<{width}} {row['ccc']:>8.4f} {cells}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def compare_runs(run_dirs, folder, output_png, branch="av", verbose=True) -> dict:
    """Puts the uncertainty curves of several evaluated runs (or ensembles) on one figure.

    Reads `<run>/evaluation/<folder>/report.json` (written by `pipelines.evaluate` or
    `pipelines.ensemble`), draws `plot_comparison` of `branch` to `output_png` and returns
    {label: {dim: row}}.
    """
    rows_by_label = {}
    names = [Path(d).name for d in run_dirs]
    for run_dir, name in zip(run_dirs, names):
        path = Path(run_dir) / "evaluation" / folder / "report.json"
        if not path.is_file():
            raise DataError(
                f"no evaluation {folder!r}; run python -m pipelines.evaluate --run-dir {run_dir} "
                f"(or pipelines.ensemble) for it first",
                path,
            )
        try:
            report = read_json(path)
        except ValueError as error:
            raise DataError(f"not valid JSON ({error})", path) from None
        section = (report.get("predictive_uncertainty") or {}).get("metrics")
        if not section:
            raise DataError(
                "the evaluation holds no predictive-uncertainty figures (a regression run evaluated "
                "by this version of pipelines.evaluate has them)",
                path,
            )
        label = name if names.count(name) == 1 else f"{Path(run_dir).parent.name}/{name}"
        label = f"{label} [{report['predictive_uncertainty']['method']}]"
        rows_by_label[label] = {
            dim: section[f"{branch}_{dim}"] for dim in features.LABEL_KEYS if f"{branch}_{dim}" in section
        }
    write_bytes_atomic(Path(output_png), plot_uncertainty_comparison(rows_by_label, f"{folder}, branch {branch}"))
    if verbose:
        print(
            format_metrics(
                {f"{label[:40]} {dim}": row for label, rows in rows_by_label.items() for dim, row in rows.items()}
            )
        )
        print(f"\nwritten: {output_png}")
    return rows_by_label


FIGURES = {
    "calibration": "uncertainty_calibration_curve.png",
    "sparsification": "uncertainty_sparsification.png",
    "reject_ccc": "uncertainty_reject_ccc.png",
}


def figures(section, title) -> dict:
    """{file name: PNG bytes}: the three curves, one line per branch, one panel per dimension."""
    by_branch = {}
    for key, row in section.items():
        branch, dim = key.split("_", 1)
        by_branch.setdefault(branch, {})[dim] = row
    return {
        name: plot_uncertainty_curves(by_branch, kind, f"{title}: {kind.replace('_', ' ')}")
        for kind, name in FIGURES.items()
    }


# --------------------------------------------------------------------------- the evaluator's section


def write_frame_csvs(predictions, out_dir) -> list:
    """Per-frame fused predictions and their calibrated std: `<out_dir>/<name>.csv` with
    `name;timestamp;arousal;valence;arousal_std;valence_std` (AVEC's layout plus the two std columns),
    then `arousal_lower;arousal_upper;valence_lower;valence_upper` when the outputs carry the bounds of
    the run's conformal intervals."""
    from pipelines.core.io_utils import write_text_atomic

    written = []
    for recording in predictions:
        outputs = recording["outputs"]
        columns = [
            features.AROUSAL,
            features.VALENCE,
            f"{features.AROUSAL}{STD_SUFFIX}",
            f"{features.VALENCE}{STD_SUFFIX}",
        ]
        bounds = [f"{dim}{side}" for dim in (features.AROUSAL, features.VALENCE) for side in ("_lower", "_upper")]
        if all(key in outputs for key in bounds):
            columns += bounds
        values = [np.asarray(outputs[c], np.float64).reshape(-1) for c in columns]
        timestamps = recording.get("timestamps")
        if timestamps is None or len(timestamps) != len(values[0]):
            timestamps = np.arange(len(values[0])) * float(recording.get("hop", 0.1))
        lines = ["name;timestamp;" + ";".join(columns)]
        for t, row in zip(timestamps, zip(*values)):
            lines.append(f"'{recording['name']}';{float(t):.2f};" + ";".join(f"{v:.6f}" for v in row))
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in recording["name"]) + ".csv"
        write_text_atomic(Path(out_dir) / name, "\n".join(lines) + "\n")
        written.append(name)
    return written


def evaluate_section(
    report,
    run_dir,
    inference_model,
    config,
    artifact_dir,
    predictions,
    out_dir,
    method="native",
    *,
    passes=DEFAULT_PASSES,
    seed=0,
    verbose=True,
) -> list:
    """The evaluator's predictive-uncertainty part: calibration (read or fitted on the validation
    partition), figures of `uncertainty_metrics`, per-frame CSVs with the std; fills
    `report["predictive_uncertainty"]` and returns the files written (relative to `out_dir`)."""
    calibration = calibration_for(
        run_dir, inference_model, config, artifact_dir, method, passes=passes, seed=seed, verbose=verbose
    )
    calibrated = attach_std(predictions, calibration)
    if method == "native":
        from pipelines.evaluation import intervals

        conformal = intervals.load(run_dir)
        if conformal is not None:  # the per-frame CSVs also hold the run's 90% conformal bounds
            calibrated = intervals.attach_bounds(calibrated, conformal)
    section = uncertainty_metrics(calibrated, calibration)
    report["predictive_uncertainty"] = {
        "method": method,
        "score": calibration.score,
        "fitted_on": calibration.fitted_on,
        "passes": calibration.passes,
        "calibration_file": CALIBRATION_FILES[method],
        "metrics": section,
    }
    files = []
    title = f"{report['model']} {report['partition']}" + ("" if report.get("corruption") is None else " (corrupted)")
    for name, data in figures(section, f"{title}, {method}").items():
        write_bytes_atomic(Path(out_dir) / name, data)
        files.append(name)
    write_frame_csvs(calibrated, Path(out_dir) / "frames")
    return files + ["frames/"]


def format_section(section) -> str:
    passes = f", {section['passes']} passes" if section.get("passes") else ""
    return "\n".join(
        [
            f"predictive uncertainty ({section['method']}{passes}; score: {section['score']}), "
            f"std calibrated on {section['fitted_on']}; ranking figures rank frames by the score"
            + ("; PICP90 and width90 of the conformal intervals" if section.get("intervals_90") == "conformal" else ""),
            format_metrics(section["metrics"]),
        ]
    )
