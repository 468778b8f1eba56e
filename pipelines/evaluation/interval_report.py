"""The evaluator's interval section: how the run's conformal intervals hold, per condition and per recording.

`conformal_section` reads the run's `conformal_calibration.json` (`pipelines.evaluation.intervals`) and
scores its 90% bounds on the clean partition and, with `--corrupt`, on the corrupted one: for every
branch and dimension the coverage (PICP) over all frames, the mean and the lowest of the recordings'
own coverage (with the lowest recording's name) and the mean width, on the corrupted condition also
the mean width on the damaged and on the intact frames. The PICP and width at 90% of the
predictive-uncertainty table then come from these bounds. A run without the file keeps the
isotonic intervals there, and the evaluator says in one line how to add it.
"""

from __future__ import annotations

import numpy as np

from pipelines.evaluation import conformal, intervals

CLEAN = "clean"


def condition_name(corruption) -> str:
    """`clean`, or `<modality>-<fraction>-<mode>` of a (modality, fraction, mode) corruption."""
    if corruption is None:
        return CLEAN
    modality, fraction, mode = corruption
    return f"{modality}-{fraction:g}-{mode}"


def coverage(predictions, calibration, damage_key=None) -> dict:
    """{"<branch>_<dim>": figures} of the calibration's 90% bounds on labelled predictions."""
    per_key = {}
    for recording in predictions:
        outputs = conformal.with_presence(recording)
        halves = calibration.half_widths(outputs)
        damaged = recording.get(damage_key) if damage_key else None
        for key, half in halves.items():
            branch, dim = key.split("_", 1)
            if recording.get(dim) is None:
                continue
            y = np.asarray(recording[dim], np.float64).reshape(-1)
            mu = np.asarray(outputs[f"{conformal.BRANCH_PREFIXES[branch]}{dim}"], np.float64).reshape(-1)
            entry = per_key.setdefault(key, {"inside": [], "width": [], "names": [], "damaged": []})
            entry["inside"].append(np.abs(y - mu) <= half)
            entry["width"].append(2.0 * half)
            entry["names"].append(recording["name"])
            mask = np.zeros(y.size, bool) if damaged is None else np.asarray(damaged, bool).reshape(-1)[: y.size]
            entry["damaged"].append(mask)
    section = {}
    for key, entry in per_key.items():
        inside, width = np.concatenate(entry["inside"]), np.concatenate(entry["width"])
        per_recording = [float(np.mean(part)) for part in entry["inside"]]
        worst = int(np.argmin(per_recording))
        row = {
            "picp": float(np.mean(inside)),
            "width": float(np.mean(width)),
            "recording_picp_mean": float(np.mean(per_recording)),
            "recording_picp_worst": per_recording[worst],
            "worst_recording": entry["names"][worst],
        }
        if damage_key is not None:
            damaged = np.concatenate(entry["damaged"])
            row["width_damaged"] = float(np.mean(width[damaged])) if damaged.any() else None
            row["width_intact"] = float(np.mean(width[~damaged])) if (~damaged).any() else None
            row["picp_damaged"] = float(np.mean(inside[damaged])) if damaged.any() else None
        section[key] = row
    return section


def conformal_section(report, run_dir, clean, evaluated, corruption, verbose=True) -> None:
    """Fills `report["intervals"]` (and the 90% figures of `report["predictive_uncertainty"]`) from the
    run's conformal calibration; without one, `report["intervals"]` says so and a hint is printed."""
    calibration = intervals.load(run_dir)
    if calibration is None:
        report["intervals"] = {"method": "isotonic", "calibration_file": None}
        if verbose:
            print(intervals.missing_hint(run_dir))
        return
    conditions = {CLEAN: coverage(clean, calibration)}
    if corruption is not None:
        conditions[condition_name(corruption)] = coverage(evaluated, calibration, f"{corruption[0]}_corrupted_eval")
    report["intervals"] = {
        "method": "conformal",
        "calibration_file": intervals.CALIBRATION_FILE,
        "level": calibration.level,
        "fitted_on": calibration.fitted_on,
        "fit_corruptions": calibration.fit_corruptions,
        "conditions": conditions,
    }
    shown = conditions[condition_name(corruption)]
    for key, row in ((report.get("predictive_uncertainty") or {}).get("metrics") or {}).items():
        if key in shown:
            row["picp_90_isotonic"], row["width_90_isotonic"] = row.get("picp_90"), row.get("width_90")
            row["picp_90"], row["width_90"] = shown[key]["picp"], shown[key]["width"]
    if report.get("predictive_uncertainty"):
        report["predictive_uncertainty"]["intervals_90"] = "conformal"


def _cell(value, width, digits=3):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def format_section(section) -> str:
    """Text of `report["intervals"]`."""
    if section.get("method") != "conformal":
        return (
            "90% intervals: isotonic (mu -+ 1.645 std); the run has no conformal_calibration.json "
            "(python -m pipelines.uncertainty --run-dir RUN adds it)"
        )
    copies = len(section.get("fit_corruptions") or [])
    lines = [
        f"{section['level']:.0%} conformal intervals ({section['calibration_file']}, fitted on "
        f"{section['fitted_on']} + {copies} corrupted copies): coverage over all frames, mean and lowest "
        "coverage of the recordings, mean width (on the damaged / intact frames of a corrupted condition)",
    ]
    header = (
        f"{'condition':<24} {'output':<16} {'PICP':>7} {'rec mean':>9} {'rec worst':>10} {'width':>8} "
        f"{'w damaged':>10} {'w intact':>9}  worst recording"
    )
    lines += [header, "-" * len(header)]
    for condition, rows in section["conditions"].items():
        for key, row in rows.items():
            lines.append(
                f"{condition:<24} {key:<16} {_cell(row['picp'], 7)} {_cell(row['recording_picp_mean'], 9)} "
                f"{_cell(row['recording_picp_worst'], 10)} {_cell(row['width'], 8)} "
                f"{_cell(row.get('width_damaged'), 10)} {_cell(row.get('width_intact'), 9)}  {row['worst_recording']}"
            )
    return "\n".join(lines)
