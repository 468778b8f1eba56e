"""Mid-epoch fault tolerance and the `--quiet` epoch lines of the trainer.

`StepBackup` is Keras' `BackupAndRestore` writing the training state (weights, optimiser state,
epoch and step) every `training.backup_every_steps` steps inside an epoch and at every epoch end.
`auto` (the default) backs up whenever about `training.backup_every_seconds` (60) seconds of
training passed since the last backup, so a kill loses at most about a minute of work on any
machine. `fit_resuming` continues an interrupted epoch with its remaining steps before the
remaining epochs, and says from which epoch and step it continues.
"""

from __future__ import annotations

import sys
import time

import keras

from pipelines.run_checks import DEFAULT_EVERY_SECONDS, backup_settings  # noqa: F401 - re-exported
from pipelines.run_checks import resume_point_of as resume_point


class StepBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` saving every `every_steps` steps (or every `every_seconds` seconds with
    `every_steps="auto"`) and at every epoch end; the metadata holds the epoch being trained and
    the steps done in it.

    Args:
        backup_dir: str. The run's `backup/` folder.
        every_steps: positive int, or "auto" to save by time.
        every_seconds: float. Seconds between saves in "auto" mode.
    """

    def __init__(self, backup_dir, every_steps="auto", every_seconds=DEFAULT_EVERY_SECONDS):
        super().__init__(str(backup_dir), save_freq=1, double_checkpoint=True, delete_checkpoint=False)
        self.every_steps = every_steps
        self.every_seconds = float(every_seconds)
        self.step_offset = 0  # steps of the current epoch done before this fit started
        self.saves = 0
        self.announce = None  # printed once the backup is loaded, with the restored optimiser step
        self.print_fn = print
        self._steps_since_save = 0
        self._last_save = time.monotonic()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_save = time.monotonic()
        if self.announce:
            iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.print_fn(f"{self.announce}; restored optimiser step {iterations}")
            self.announce = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batch_seen = self.step_offset

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_seen = self.step_offset + batch + 1
        self._steps_since_save += 1
        if self.every_steps == "auto":
            due = time.monotonic() - self._last_save >= self.every_seconds
        else:
            due = self._steps_since_save >= self.every_steps
        if due:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self.step_offset = 0
        self._save()

    def _save(self):
        self._save_model()
        self.saves += 1
        self._steps_since_save = 0
        self._last_save = time.monotonic()


def _duration(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochLine(keras.callbacks.Callback):
    """The trainer's epoch output: one line per epoch with the loss, the main metric, the epoch time
    and an ETA of the whole run. Within an epoch, a tqdm bar with the loss and the main metric
    (`bar=True`), or with `--quiet` (`bar=False`) a line per `heartbeat_seconds` with the step and
    the epoch's ETA, for long epochs.

    Args:
        monitor: str. The main metric (e.g. `val_ccc_mean`).
        epochs: int. Total epochs of the run.
        steps_per_epoch: int or None. Steps of a full epoch (for the in-epoch ETA).
        heartbeat_seconds: float. Seconds between in-epoch lines.
        stream: file to write to (default stdout).
        bar: bool. A progress bar within each epoch instead of the heartbeat lines.
    """

    def __init__(self, monitor, epochs, steps_per_epoch=None, heartbeat_seconds=60.0, stream=None, bar=False):
        super().__init__()
        self.bar = bar
        self._bar = None
        self.monitor = monitor
        self.epochs = int(epochs)
        self.steps_per_epoch = steps_per_epoch
        self.heartbeat_seconds = float(heartbeat_seconds)
        self.stream = stream
        self.step_offset = 0
        self.epoch_seconds = []

    def _print(self, text):
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_beat = time.monotonic()
        self._first_step_end = None
        if self.bar:
            from tqdm import tqdm

            total = None if self.steps_per_epoch is None else self.steps_per_epoch - self.step_offset
            self._bar = tqdm(
                total=total, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step", file=sys.stderr, leave=False
            )

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            logs = logs or {}
            metric = self.monitor[len("val_") :] if self.monitor.startswith("val_") else self.monitor
            shown = {key: f"{float(logs[key]):.4f}" for key in ("loss", metric) if key in logs}
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update()
            return
        now = time.monotonic()
        if self._first_step_end is None:
            self._first_step_end = now  # the first step includes tracing: not used for the ETA
        if now - self._last_beat < self.heartbeat_seconds:
            return
        self._last_beat = now
        done = self.step_offset + batch + 1
        text = f"  step {done}"
        if self.steps_per_epoch:
            text += f"/{self.steps_per_epoch}"
            if batch >= 1:
                rate = batch / max(now - self._first_step_end, 1e-9)
                text += f", epoch ETA {_duration((self.steps_per_epoch - done) / rate)}"
        loss = (logs or {}).get("loss")
        if loss is not None:
            text += f", loss {float(loss):.4f}"
        self._print(text)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        logs = logs or {}
        seconds = time.monotonic() - self._epoch_start
        if not self.step_offset:
            self.epoch_seconds.append(seconds)
        self.step_offset = 0
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        if "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4f}")
        if self.monitor in logs:
            parts.append(f"{self.monitor} {float(logs[self.monitor]):.4f}")
        parts.append(f"{seconds:.0f} s")
        remaining = self.epochs - epoch - 1
        timed = self.epoch_seconds[1:] or self.epoch_seconds  # the first epoch also traces the graphs
        mean = sum(timed) / len(timed) if timed else seconds
        parts.append(f"ETA {_duration(remaining * mean)}" if remaining else "done")
        self._print(" - ".join(parts))


def fit_resuming(
    model,
    train_ds,
    *,
    epochs,
    steps_per_epoch,
    repeated,
    backup,
    callbacks,
    print_fn=print,
    epoch_line=None,
    **fit_kwargs,
):
    """`model.fit` that continues from `backup`'s folder, in-epoch backups included.

    A backup taken inside epoch e after s steps first trains the remaining `steps_per_epoch - s`
    steps of epoch e (the restored weights and optimiser state; the windows come in a freshly
    shuffled order), then epochs e+1.. as usual. Prints from which epoch and step the run continues.

    Args:
        model: compiled keras.Model.
        train_ds: tf.data.Dataset of one epoch (or repeated, with `repeated=True`).
        epochs: int. Total epochs.
        steps_per_epoch: int. Steps of a full epoch.
        repeated: bool. `train_ds` repeats forever (fit then needs `steps_per_epoch`).
        backup: StepBackup (also in `callbacks`).
        callbacks: list of callbacks for both fits.
        epoch_line: optional EpochLine (also in `callbacks`).
        **fit_kwargs: passed to `model.fit` (validation_data, verbose, ...).
    """
    point = resume_point(backup.backup_dir)
    backup.print_fn = print_fn
    if point is not None:
        epoch, step = point
        if epoch >= epochs:
            print_fn(f"resuming: the backup is at the end of epoch {epoch}; nothing left to train")
        elif step and step < steps_per_epoch:
            backup.announce = (
                f"resuming epoch {epoch + 1}/{epochs} at step {step + 1}/{steps_per_epoch} from the "
                f"backup in {backup.backup_dir} (weights and optimiser state after step {step})"
            )
            backup.step_offset = step
            if epoch_line is not None:
                epoch_line.step_offset = step
            model.fit(
                train_ds.skip(0 if repeated else step),
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=steps_per_epoch - step if repeated else None,
                callbacks=callbacks,
                **fit_kwargs,
            )
            if getattr(model, "stop_training", False):
                return
        elif epoch > 0:
            backup.announce = f"resuming after epoch {epoch}/{epochs} from the backup in {backup.backup_dir}"
    model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch if repeated else None,
        callbacks=callbacks,
        **fit_kwargs,
    )
