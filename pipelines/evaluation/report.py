"""The evaluation report: its text (`format_report`, `robustness_table`) and its files (`write_report`)."""

from __future__ import annotations

import math

from pipelines.core.io_utils import finite_or_none, write_json_atomic, write_text_atomic
from pipelines.data import features
from pipelines.evaluation.diagnostics import EXPECTED_SIGN


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
        from pipelines.evaluation import uncertainty_report

        lines += ["", uncertainty_report.format_section(report["predictive_uncertainty"])]
    if report.get("intervals"):
        from pipelines.evaluation import interval_report

        lines += ["", interval_report.format_section(report["intervals"])]
    if report.get("per_recording"):
        metric = "ccc_mean" if task == "regression" else "f1_macro"
        branches = [b for b in evaluation.BRANCH_PREFIXES if f"{b}_{metric}" in report["per_recording"][0]]
        header = f"{'recording':<20} {'frames':>7} " + " ".join(f"{b + ' ' + metric:>16}" for b in branches)
        lines += ["", "per recording", header, "-" * len(header)]
        for row in report["per_recording"]:
            cells = " ".join(_cell(row[f"{b}_{metric}"], 16) for b in branches)
            lines.append(f"{row['name']:<20} {row['num_frames']:>7} {cells}")
    return "\n".join(lines)
