"""Learning-rate range test: `python -m pipelines.train ... --find-lr`.

Trains a fresh model of the run's configuration for a few hundred steps while the learning rate
grows exponentially from `min_lr` to `max_lr` (one rate per step), records the training loss of
every step, and stops early once the smoothed loss has diverged (above 4 times its minimum). The
suggested rate is a tenth of the rate at the minimum of the smoothed loss: the usual choice, well
inside the range where the loss still falls steeply. The model is thrown away afterwards; the run
directory's checkpoints, history and config are not touched. Written to `<output-dir>/lr_find/`:

    lr_find.csv  (step, learning_rate, loss, smoothed_loss)
    lr_find.png  (loss against learning rate, log x axis, the suggestion marked)
    lr_find.json (the suggestion and the sweep's settings)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipelines.config.settings import as_run_config
from pipelines.core.errors import ColdKerasError, ConfigError
from pipelines.core.io_utils import save_figure_atomic, write_json_atomic, write_text_atomic

DEFAULT_MIN_LR = 1e-5
DEFAULT_MAX_LR = 1.0
DEFAULT_STEPS = 200
SMOOTHING = 0.9
DIVERGENCE_FACTOR = 4.0


def sweep_rates(min_lr, max_lr, steps):
    """The learning rate of each step: min_lr * (max_lr / min_lr) ** (i / (steps - 1))."""
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / max(steps - 1, 1))


def smooth(losses, beta=SMOOTHING):
    """Bias-corrected exponential moving average of the per-step losses."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * float(loss)
        out.append(average / (1 - beta ** (i + 1)))
    return np.asarray(out, np.float64)


def suggest(rates, losses):
    """(suggested rate, rate at the minimum of the smoothed loss) from a sweep's per-step losses.

    Non-finite losses end the usable part of the sweep.
    """
    rates = np.asarray(rates, np.float64)
    losses = np.asarray(losses, np.float64)
    finite = np.isfinite(losses)
    usable = int(np.argmin(finite)) if not finite.all() else len(losses)
    if usable < 2:
        raise ColdKerasError("the learning-rate sweep diverged in its first steps; lower --find-lr-min")
    smoothed = smooth(losses[:usable])
    best = int(np.argmin(smoothed))
    return float(rates[best] / 10.0), float(rates[best])


def _check(min_lr, max_lr, steps):
    if not (min_lr > 0 and max_lr > min_lr):
        raise ConfigError(f"--find-lr-min ({min_lr}) must be > 0 and below --find-lr-max ({max_lr})")
    if steps < 10:
        raise ConfigError(f"--find-lr-steps must be at least 10, got {steps}")


def plot(rates, losses, suggested, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    finite = np.isfinite(losses)
    ax.plot(rates[finite], np.asarray(losses)[finite], color="0.7", lw=1, label="loss per step")
    usable = int(np.argmin(finite)) if not finite.all() else len(losses)
    ax.plot(rates[:usable], smooth(np.asarray(losses)[:usable]), color="tab:blue", lw=1.5, label="smoothed")
    ax.axvline(suggested, color="tab:red", ls="--", lw=1, label=f"suggested {suggested:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = np.nanpercentile(np.asarray(losses)[finite], 95) if finite.any() else 1.0
    low = np.nanmin(np.asarray(losses)[finite]) if finite.any() else 0.0
    ax.set_ylim(low - 0.05 * abs(low), top * 1.1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=90)


def run(
    config, output_dir, *, min_lr=DEFAULT_MIN_LR, max_lr=DEFAULT_MAX_LR, steps=DEFAULT_STEPS, progress=True
) -> dict:
    """Runs the range test for the run configured by `config` (a RunConfig, or a mapping parsed into one);
    returns the record of lr_find.json."""
    config = as_run_config(config)
    min_lr, max_lr, steps = float(min_lr), float(max_lr), int(steps)
    _check(min_lr, max_lr, steps)

    from pipelines.runs import prepare
    from pipelines.training import setup as training_setup

    prepare.check_inputs(config)
    training_setup.setup_precision(config.training.mixed_precision)

    import keras
    from tqdm import tqdm

    keras.utils.set_random_seed(int(config.training.seed))
    artifact_dir = prepare.prepare_artifacts(config, progress=progress)
    inputs = training_setup.make_training_inputs(config, artifact_dir)
    model = training_setup.build_compiled_model(config, inputs.manifest, artifact_dir, inputs.steps_per_epoch)
    rates = sweep_rates(min_lr, max_lr, steps)
    # The trainer's optimiser (same weight decay and clipping) with the sweep's rate set per step.
    from cold_keras.optimizers import AdamW

    optimizer = AdamW(learning_rate=float(rates[0]), **training_setup.optimizer_options(config.training))
    model.compile(optimizer=optimizer)

    losses = []
    bar = tqdm(total=steps, desc="learning-rate sweep", unit="step", disable=not progress)
    dataset = iter(inputs.train_ds.repeat())
    best = math.inf
    for step in range(steps):
        optimizer.learning_rate = float(rates[step])
        model.reset_metrics()  # the loss logged is then this step's alone
        logs = model.train_on_batch(next(dataset)[0], return_dict=True)
        loss = float(logs["loss"])
        losses.append(loss)
        bar.update(1)
        bar.set_postfix(lr=f"{rates[step]:.2g}", loss=f"{loss:.3g}")
        current = smooth(losses)[-1] if math.isfinite(loss) else math.inf
        best = min(best, current)
        if not math.isfinite(current) or (step > 10 and current > DIVERGENCE_FACTOR * best):
            break
    bar.close()
    keras.backend.clear_session()

    rates = rates[: len(losses)]
    losses = np.asarray(losses, np.float64)
    suggested, at_minimum = suggest(rates, losses)
    folder = Path(output_dir) / "lr_find"
    folder.mkdir(parents=True, exist_ok=True)
    smoothed = np.full(len(losses), np.nan)
    usable = int(np.argmin(np.isfinite(losses))) if not np.isfinite(losses).all() else len(losses)
    smoothed[:usable] = smooth(losses[:usable])
    lines = ["step,learning_rate,loss,smoothed_loss"] + [
        f"{i + 1},{rates[i]:.6g},{losses[i]:.6g},{smoothed[i]:.6g}" for i in range(len(losses))
    ]
    write_text_atomic(folder / "lr_find.csv", "\n".join(lines) + "\n")
    plot(rates, losses, suggested, folder / "lr_find.png")
    record = {
        "suggested_learning_rate": suggested,
        "minimum_loss_learning_rate": at_minimum,
        "steps_run": len(losses),
        "min_lr": min_lr,
        "max_lr": max_lr,
        "steps": steps,
        "model": config.model.name,
        "configured_learning_rate": float(config.training.learning_rate),
    }
    write_json_atomic(folder / "lr_find.json", record)
    print(
        f"learning-rate sweep over {len(losses)} steps ({min_lr:.2g} .. {rates[-1]:.2g}): smoothed loss lowest "
        f"at {at_minimum:.3g}; suggested learning rate {suggested:.3g} (configured: "
        f"{record['configured_learning_rate']:.3g}). Plot: {folder / 'lr_find.png'}"
    )
    print(
        f"use it: python -m pipelines.train --dataset {config.dataset} --model {config.model.name} "
        f"--learning-rate {suggested:.2g}"
    )
    return record
