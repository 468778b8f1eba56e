"""The report of a search: the table of its trials, and the HParams dashboard's experiment in TensorBoard."""

from __future__ import annotations

import math
from pathlib import Path

from pipelines.training.search_space import DEFAULT_LABEL_DELAY_CHOICES, LABEL_DELAY, LAMBDA_RANGE, LEARNING_RATE_RANGE


def write_hparams_experiment(log_dir, names, objective_name, delay_choices=DEFAULT_LABEL_DELAY_CHOICES) -> None:
    """Declares the searched ranges and the metrics for TensorBoard's HParams dashboard.

    KerasTuner writes each trial's values (a session) into `<log_dir>/<trial_id>/execution0`;
    this experiment summary at the top tells the dashboard the domains and which scalars of the
    sessions' `validation` runs to show as metric columns. Written once per search.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    log_dir = Path(log_dir)
    if any(log_dir.glob("events.out.tfevents*")):
        return
    metric = objective_name.removeprefix("val_")
    hparams = [
        hparams_api.HParam(
            name,
            hparams_api.Discrete(list(delay_choices))
            if name == LABEL_DELAY
            else hparams_api.RealInterval(*(LEARNING_RATE_RANGE if name == "learning_rate" else LAMBDA_RANGE)),
        )
        for name in names
    ]
    metrics = [
        hparams_api.Metric(f"epoch_{metric}", group="validation", display_name=objective_name),
        hparams_api.Metric("epoch_loss", group="validation", display_name="val_loss"),
    ]
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hparams_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def trial_rows(oracle, names, direction="max") -> list:
    """One dict per trial (id, searched values, score, status), best first, unscored last."""
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append(
            {
                "trial_id": trial.trial_id,
                **{name: values.get(name) for name in names},
                "score": trial.score,
                "status": str(trial.status),
            }
        )
    sign = -1.0 if direction == "max" else 1.0
    scored = lambda row: row["score"] is not None and math.isfinite(row["score"])  # noqa: E731
    return sorted(
        rows, key=lambda row: (0, sign * row["score"], row["trial_id"]) if scored(row) else (1, 0.0, row["trial_id"])
    )


def format_trials(rows, names, objective) -> str:
    """A plain-text table of `trial_rows`."""
    header = ["trial"] + list(names) + [objective, "status"]
    lines = [
        [row["trial_id"]]
        + [f"{row[n]:.3g}" if row[n] is not None else "-" for n in names]
        + [f"{row['score']:.4f}" if row["score"] is not None else "-", row["status"]]
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    text = [" ".join(str(cell).rjust(width) for cell, width in zip(line, widths)) for line in [header] + lines]
    return "\n".join(text)
