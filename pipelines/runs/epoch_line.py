"""The trainer's epoch output: one line per epoch with the loss, the main metric, the epoch time and
an ETA of the whole run, and within an epoch a progress bar or, with `--quiet`, a line now and then.

`EpochLine` is a Keras callback whose epoch times are part of the run's backup
(`pipelines.runs.backup.StepBackup.track`), so the ETA of a resumed run counts the epochs before the
interruption too.
"""

from __future__ import annotations

import sys
import time

import keras


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

    def resume_state(self):
        """The epoch times behind the ETA (`StepBackup.track`)."""
        return {"epoch_seconds": list(self.epoch_seconds)}

    def restore_state(self, state):
        self.epoch_seconds = list((state or {}).get("epoch_seconds", []))

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
