"""Figures of a recording: the timeline of labels, predictions, intervals and fusion weights."""

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
