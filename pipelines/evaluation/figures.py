"""The evaluation's figures, as PNG bytes.

* `plot_recording` / `plot_timeline`: a recording over time (labels, predictions, intervals, fusion
  weights, corrupted and absent frames);
* `plot_reliability`: the reliability diagram of a classification branch before and after temperature
  scaling;
* `plot_uncertainty_curves` / `plot_uncertainty_comparison`: the calibration, sparsification and
  reject-option curves of the predictive uncertainty, per branch or for several runs.
"""

from __future__ import annotations

import io

import numpy as np

from pipelines.data import features


def plot_recording(recording, outputs, hop, title=None):
    """Label, unimodal and fused predictions, and the fusion weights over time (paper Fig. 5/6).

    With `<dim>_lower` / `<dim>_upper` in `outputs` the fused prediction's interval is drawn as a
    band; frames where a modality is absent (`audio_present` / `visual_present` 0, in `outputs` or
    the recording) are shaded grey on the weight panel.

    Used by the trainer's TensorBoard callback, the evaluator's timelines and the predictor's `--plot`.

    Args:
        recording: dict from `input_pipeline.iter_recordings` (labels; optional per-frame
            `audio_corrupted` / `visual_corrupted` flags are shaded on the weight panel).
        outputs: dict of per-frame NumPy outputs of the inference model ([N] each; classification
            outputs converted to one value per frame by the caller).
        hop: float. Seconds between frames.
        title: optional str above the figure (e.g. the recording's name).

    Returns:
        bytes: the figure as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = [key for key in ("audio_weight", "visual_weight") if key in outputs]
    rows = 2 + (1 if weights else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.4 * rows), sharex=True)
    time = np.arange(len(outputs[features.VALENCE])) * hop
    for ax, dim in zip(axes, features.LABEL_KEYS):
        label = recording.get(dim)
        if label is not None:
            ax.plot(time, np.broadcast_to(np.asarray(label, np.float32), time.shape), "k", lw=1.5, label="label")
        for key, style, name in (
            (f"audio_{dim}", "tab:blue", "audio"),
            (f"visual_{dim}", "tab:orange", "visual"),
            (dim, "tab:green", "fused"),
        ):
            if key in outputs and np.ndim(outputs[key]) == 1:
                ax.plot(time, outputs[key], color=style, lw=1, label=name)
        if f"{dim}_lower" in outputs and f"{dim}_upper" in outputs:
            ax.fill_between(
                time,
                outputs[f"{dim}_lower"],
                outputs[f"{dim}_upper"],
                color="tab:green",
                alpha=0.2,
                lw=0,
                label="interval",
            )
        ax.set_ylabel(dim)
        ax.set_ylim(-1.1, 1.1)
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    if weights:
        ax = axes[-1]
        for key, color in zip(weights, ("tab:blue", "tab:orange")):
            ax.plot(time, outputs[key], color=color, lw=1, label=key.replace("_", " "))
        shaded = 0
        for key, color in (("audio_corrupted", "tab:blue"), ("visual_corrupted", "tab:orange")):
            flags = recording.get(key)
            if flags is not None and len(flags) == len(time) and np.asarray(flags, bool).any():
                ax.fill_between(
                    time,
                    0,
                    1,
                    where=np.asarray(flags, bool),
                    color=color,
                    alpha=0.12,
                    lw=0,
                    label=f"{key.split('_')[0]} corrupted (shaded)",
                )
                shaded += 1
        for key, hatch in (("audio_present", "//"), ("visual_present", "\\\\")):
            present = outputs.get(key, recording.get(key))
            if present is not None and len(present) == len(time) and (np.asarray(present) == 0).any():
                ax.fill_between(
                    time,
                    0,
                    1,
                    where=np.asarray(present) == 0,
                    color="grey",
                    alpha=0.2,
                    hatch=hatch,
                    lw=0,
                    label=f"{key.split('_')[0]} absent",
                )
                shaded += 1
        ax.set_ylim(0, 1)
        ax.set_ylabel("fusion weight")
        ax.legend(loc="upper right", fontsize=7, ncol=2 + shaded)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or str(recording.get("name", "")))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------- calibration and uncertainty


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
    """Predictions and fusion weights of one recording over time, corrupted frames shaded (the
    evaluator's `timeline_<recording>.png`)."""
    from cold_keras import metrics as cmetrics

    outputs = {}
    for key, value in recording["outputs"].items():
        value = np.asarray(value, np.float64)
        if value.ndim == 2 and value.shape[-1] == features.NUM_CLASSES:
            # Classification: the expected bin value in [-1, 1], comparable with the label.
            value = cmetrics.softmax(value) @ np.array([-1.0, 0.0, 1.0])
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


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    _pyplot().close(fig)
    return buffer.getvalue()


def _draw_uncertainty(ax, kind, rows_by_label, dim):
    """One panel: the `kind` curve of dimension `dim` for every label (a branch, or a run)."""
    for index, (label, rows) in enumerate(rows_by_label.items()):
        row = rows.get(dim)
        if row is None:
            continue
        color = f"C{index % 10}"
        curves = row["curves"][kind]
        if kind == "calibration":
            ax.plot(
                curves["expected"],
                curves["observed"],
                color=color,
                label=f"{label} (area {row['miscalibration_area']:.3f})",
            )
        elif kind == "sparsification":
            ax.plot(curves["fraction_removed"], curves["model"], color=color, label=f"{label} (AUSE {row['ause']:.3f})")
            ax.plot(curves["fraction_removed"], curves["oracle"], color=color, ls="--", lw=0.8)
        else:
            ax.plot(
                curves["fraction_rejected"],
                curves["ccc"],
                color=color,
                marker="o",
                ms=3,
                label=f"{label} ({row['reject_ccc_50']:.3f} at 50%)",
            )
    if kind == "calibration":
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_xlabel("expected coverage")
        ax.set_ylabel("observed coverage")
    elif kind == "sparsification":
        ax.set_xlabel("fraction removed (most uncertain first)")
        ax.set_ylabel("RMSE of kept frames (dashed: oracle)")
    else:
        ax.set_xlabel("fraction rejected (most uncertain first)")
        ax.set_ylabel("CCC of the kept frames")
    ax.set_title(f"{dim}: {kind.replace('_', ' ')}", fontsize=9)
    ax.legend(fontsize=7)


def plot_uncertainty_curves(curves_by_label, kind, title) -> bytes:
    """One panel per dimension; one line per label (a branch, or a run in `pipelines.compare`).

    Args:
        curves_by_label: {label: {dim: row of `uncertainty_metrics` (with "curves")}}.
        kind: "calibration", "sparsification" or "reject_ccc".
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(features.LABEL_KEYS), figsize=(9, 3.8))
    for ax, dim in zip(axes, features.LABEL_KEYS):
        _draw_uncertainty(ax, kind, curves_by_label, dim)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def plot_uncertainty_comparison(curves_by_label, title) -> bytes:
    """The three curves (rows) of both dimensions (columns) for several runs on one figure."""
    plt = _pyplot()
    kinds = ("calibration", "sparsification", "reject_ccc")
    fig, axes = plt.subplots(len(kinds), len(features.LABEL_KEYS), figsize=(10, 11))
    for row_axes, kind in zip(axes, kinds):
        for ax, dim in zip(row_axes, features.LABEL_KEYS):
            _draw_uncertainty(ax, kind, curves_by_label, dim)
    fig.suptitle(title, fontsize=10)
    return _png(fig)
