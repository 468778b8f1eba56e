"""Trainer: `python -m pipelines.train --dataset {avec,iemocap,synthetic} ...`.

Runs (or reuses) the data components, trains the chosen model with the paper's optimisation
(AdamW, cosine decay with warm restarts), keeps the best checkpoint on the validation partition,
evaluates it on every labelled non-train partition and writes the run directory:

    config.json  checkpoints/  backup/  tensorboard/  history.csv  model.keras
    metrics.json  predictions/<partition>/<name>.csv

Killing the process and running the same command again resumes from the last backup (one is taken
inside an epoch too) and ends with the same metrics as the uninterrupted run: the backup holds the
weights, the optimiser, the random generators, the epoch's metrics so far and the callbacks' state,
and the training stream is a pure function of (seed, epoch, step) (`pipelines.runs.backup`,
`pipelines.runs.resume`).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import settings
from pipelines.core.errors import ColdKerasError, ConfigError
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.runs.checks import backup_settings, epochs_extension, resume_point_of
from pipelines.runs.folders import training_delay_frames
from pipelines.training.setup import (
    build_compiled_model,
    is_chief,
    make_training_inputs,
    monitor_name,
    setup_devices,
    setup_precision,
)

RUN_FILES = ("config.json", "model.keras", "metrics.json", "history.csv")


# --------------------------------------------------------------------------- the run


def _check_run_dir(run_dir: Path, config: settings.RunConfig, overwrite: bool) -> bool:
    """Returns True when the run directory holds a finished run with the same settings."""
    saved_path = run_dir / "config.json"
    if overwrite and run_dir.exists():
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in ("backup", "checkpoints", "tensorboard", "predictions"):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        return False
    if not saved_path.exists():
        return False
    # Both sides resolved: a config.json written before a key existed holds it at its default.
    saved = config_lib.comparable_settings(read_json(saved_path), saved_path)
    current = config_lib.comparable_settings(config)
    if saved != current and _continue_for_more_epochs(run_dir, saved, current):
        return False
    if saved != current:
        changed = config_lib.first_difference(saved, current)
        raise ConfigError(
            f"holds a run with different settings ({changed}); pass another --output-dir, or --overwrite "
            "to start this one afresh",
            run_dir,
        )
    return (run_dir / "metrics.json").exists()


def _continue_for_more_epochs(run_dir: Path, saved: dict, current: dict) -> bool:
    """True when the settings `current` only ask for more epochs than the run in `run_dir` (finished
    or not): the run then continues from its last backup for the extra epochs, and its metrics.json,
    which describes the shorter run, is removed. Raises ConfigError when a finished run has no backup."""
    extension = epochs_extension(saved, current)
    if extension is None:
        return False
    old, new = extension
    if (run_dir / "metrics.json").exists():
        if resume_point_of(run_dir / "backup") is None:
            raise ConfigError(
                f"holds a finished {old}-epoch run without its last-epoch backup (backup/), so it "
                f"cannot be continued to {new} epochs; pass --overwrite to train {new} epochs afresh",
                run_dir,
            )
        (run_dir / "metrics.json").unlink()
    print(f"continuing the {old}-epoch run in {run_dir} to {new} epochs (--epochs {new})")
    return True


def best_so_far(history_path: Path, monitor: str):
    if not history_path.exists():
        return None
    values = []
    with open(history_path) as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row.get(monitor, "nan"))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    return max(values) if values else None


def run(config, output_dir, *, overwrite=False, progress=True) -> dict:
    """Trains and evaluates one run (`config`: a RunConfig, or a mapping parsed into one); returns the
    metrics dict written to `metrics.json`."""
    config = settings.as_run_config(config)
    run_dir = Path(output_dir)
    if _check_run_dir(run_dir, config, overwrite):
        metrics = read_json(run_dir / "metrics.json")
        print(f"{run_dir} already holds a finished run with these settings (pass --overwrite to train again)")
        return metrics

    from pipelines.runs import prepare

    prepare.check_inputs(config)
    training = config.training
    strategy = setup_devices(training.distribute)
    policy = setup_precision(training.mixed_precision)

    import keras

    from cold_keras.models import inference_model
    from pipelines.runs.resume import fit_resuming

    keras.utils.set_random_seed(int(training.seed))
    artifact_dir = prepare.prepare_artifacts(config, progress=progress)
    # An earlier attempt wrote config.json before training; without a backup it starts over, and says so.
    rerun = (run_dir / "config.json").exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    chief = is_chief()
    if chief:
        runtime = {
            "artifact_dir": str(artifact_dir),
            "policy": policy,
            "replicas": strategy.num_replicas_in_sync,
            "corpus_fingerprint": prepare.corpus_fingerprint(artifact_dir),
            # The frame hop (s) the model learnt: pipelines.predict refuses features at another one.
            # Outside the compared settings, so a run saved before it was recorded still resumes.
            "hop": float(read_json(artifact_dir / "manifest.json")["hop"]),
        }
        runtime.update(raw_runtime(read_json(artifact_dir / "manifest.json")))
        write_json_atomic(run_dir / "config.json", {**config_lib.comparable_settings(config), "runtime": runtime})

    inputs = make_training_inputs(config, artifact_dir)
    model = build_compiled_model(config, inputs.manifest, artifact_dir, inputs.steps_per_epoch, strategy=strategy)
    infer = inference_model(model)
    watch = _Callbacks(config, run_dir, artifact_dir, inputs, infer, chief=chief, progress=progress)
    if rerun and watch.backup.resume_point() is None:
        print(f"no backup in {run_dir / 'backup'} yet: starting the run from the beginning")
    started = time.time()
    try:
        fit_resuming(
            model,
            inputs.train_stream,
            validation_data=inputs.val_ds,
            epochs=int(training.epochs),
            steps_per_epoch=inputs.steps_per_epoch,
            repeated=bool(training.oversample),
            backup=watch.backup,
            callbacks=watch.callbacks,
            epoch_line=watch.epoch_line,
            verbose=0,
        )
    except KeyboardInterrupt:
        watch.flush()  # TensorBoard's buffered events: the command then ends without the interpreter's teardown
        raise
    pause_point("train.fitted")
    if watch.nan_guard.failed:
        raise ColdKerasError(
            f"training stopped: {watch.nan_guard.failed}. The last good epoch is kept in "
            f"{run_dir / 'backup'}; lower the learning rate or the lambdas and run again"
        )
    train_seconds = time.time() - started

    if watch.best_path.exists():
        model.load_weights(str(watch.best_path))  # with training.ema_momentum, the averaged weights
    elif getattr(model.optimizer, "use_ema", False):
        model.optimizer.swap_average_weights()
    if config.model.fusion_guard:
        from pipelines.components import input_pipeline
        from pipelines.evaluation import fusion_guard as reliability

        recordings = list(input_pipeline.iter_recordings(artifact_dir, inputs.validation))
        reliability.apply_fusion_guard(model, infer, recordings, config.task, inputs.sequence_level, run_dir)
    if chief:
        tmp = run_dir / ".model.keras.tmp.keras"
        model.save(str(tmp))
        os.replace(tmp, run_dir / "model.keras")
    metrics = _score_partitions(config, run_dir, artifact_dir, inputs, infer, chief=chief, progress=progress)
    if chief:
        fit_uncertainty(config, run_dir, artifact_dir, inputs, infer, progress=progress)
        write_json_atomic(run_dir / "metrics.json", metrics)  # last: backup/ stays, --epochs N continues from it
    print(f"\ntrained {config.model.name} ({config.task}) in {train_seconds:.0f} s; run directory: {run_dir}")
    from pipelines.evaluation import scoring as evaluation

    print(evaluation.format_table(metrics, config.task))
    return metrics


class _Callbacks:
    """The callbacks of a training run: step backups, best checkpoint, history, guards, TensorBoard,
    the pause point and the epoch line."""

    def __init__(self, config, run_dir, artifact_dir, inputs, infer, *, chief, progress):
        import keras

        from pipelines.components import input_pipeline
        from pipelines.core.pause import pause_callbacks
        from pipelines.runs.backup import BestCheckpoint, StepBackup
        from pipelines.runs.epoch_line import EpochLine
        from pipelines.training.callbacks import AveragedValidation, InterruptGuard, NanGuard, TensorBoardExtras
        from pipelines.training.stability import CollapseGuard

        training = config.training
        monitor = monitor_name(config.task)
        checkpoints = run_dir / "checkpoints"
        checkpoints.mkdir(exist_ok=True)
        self.best_path = checkpoints / "best.weights.h5"
        history = run_dir / "history.csv"
        # The backup holds the history's text and every tracked callback's state: first in the list, so
        # that they are put back before the others start; its epoch-end save comes last (below).
        self.backup = StepBackup(run_dir / "backup", *backup_settings(training), files={"history.csv": history})
        self.nan_guard = self.backup.track("nan_guard", NanGuard())
        checkpoint = self.backup.track(
            "best_checkpoint",
            BestCheckpoint(
                str(self.best_path),
                monitor=monitor,
                mode="max",
                save_best_only=True,
                save_weights_only=True,
                # counts only for a backup of an earlier version, which holds no best value
                initial_value_threshold=best_so_far(history, monitor),
            ),
        )
        self.epoch_line = self.backup.track(
            "epoch_line", EpochLine(monitor, int(training.epochs), inputs.steps_per_epoch, bar=progress)
        )
        self.callbacks = [
            self.backup,
            AveragedValidation(),  # training.ema_momentum: the validation scores the averaged weights
            checkpoint,
            keras.callbacks.CSVLogger(str(history), separator=",", append=True),
            self.nan_guard,
            self.backup.track("collapse_guard", CollapseGuard()),
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), histogram_freq=0, write_graph=False),
            self.epoch_line,
            # "epoch e done" only once all of epoch e is written; Ctrl-C since the backup's on_epoch_end waits
            self.backup.epoch_end_callback(),
            InterruptGuard(),  # after it: Ctrl-C at an epoch's end keeps that epoch
        ]
        figure_recording = next(iter(input_pipeline.iter_recordings(artifact_dir, inputs.validation)), None)
        if figure_recording is not None and chief:  # the figure takes a while: after the backup
            extras = run_dir / "tensorboard" / "validation" / "extras"
            self.callbacks.append(TensorBoardExtras(extras, infer, figure_recording))
        self.callbacks += pause_callbacks("train", self.backup)

    def flush(self):
        """Writes out what the TensorBoard writers hold."""
        for callback in self.callbacks:
            writers = list(getattr(callback, "_writers", {}).values()) + [getattr(callback, "writer", None)]
            for writer in writers:
                if writer is not None and hasattr(writer, "flush"):
                    writer.flush()


def _score_partitions(config, run_dir, artifact_dir, inputs, infer, *, chief, progress) -> dict:
    """Scores the trained model on every labelled non-train partition (the validation partition first,
    which fits the temperatures of classification), writes the prediction CSVs and `metrics.json`."""
    from pipelines.components import input_pipeline
    from pipelines.data import label_delay
    from pipelines.evaluation import scoring as evaluation

    task, manifest, validation = config.task, inputs.manifest, inputs.validation
    metrics, temperatures = {}, None
    partitions = [
        p
        for p in (validation, features.DEVEL, features.TEST)
        if p in manifest["partitions"] and p != features.TRAIN and manifest["partitions"][p].get("labelled")
    ]
    delay = training_delay_frames(config, artifact_dir)
    for partition in dict.fromkeys(partitions):
        recordings = input_pipeline.iter_recordings(artifact_dir, partition)
        predictions = evaluation.predict_recordings(infer, recordings, progress=progress and f"predict {partition}")
        predictions = list(label_delay.shift_predictions(predictions, delay))
        scores, fitted = evaluation.score_partition(
            predictions, task=task, sequence_level=inputs.sequence_level, temperatures=temperatures
        )
        if partition == validation:
            temperatures = fitted  # temperature scaling is fitted on the validation partition only
        metrics[partition] = scores
        if chief:
            evaluation.write_prediction_csvs(
                predictions, run_dir / "predictions" / partition, task=task, sequence_level=inputs.sequence_level
            )
    return metrics


def raw_runtime(manifest: dict) -> dict:
    """A raw-mode run's input settings, recorded in config.json's `runtime` so that predictions on
    other recordings (`pipelines.predict`, `pipelines.extract --for-run`) prepare them the same way:
    `{"raw": {"sample_rate", "visual_shape", "logmel"}}`; {} for a feature run."""
    if manifest.get("mode") != "raw":
        return {}
    return {
        "raw": {
            "sample_rate": int(manifest["sample_rate"]),
            "visual_shape": [int(x) for x in manifest["visual_shape"]],
            "logmel": dict(manifest["logmel"]),
        }
    }


def fit_uncertainty(config, run_dir, artifact_dir, inputs, infer, *, progress) -> None:
    """A frame-level regression run's per-frame uncertainty calibration (`pipelines.uncertainty`) and
    conformal intervals (`pipelines.evaluation.intervals`), fitted on the validation partition (plus
    corrupted copies of it for the intervals) and written into the run directory, so that the run's
    predictions (`pipelines.predict`), evaluations and exports carry intervals from the start."""
    if config.task != "regression" or inputs.sequence_level:
        return
    from pipelines.evaluation import intervals

    intervals.fit_for_run(run_dir, infer, config, artifact_dir, verbose=progress)
