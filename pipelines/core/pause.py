"""Named pause points, for testing what a command leaves behind when it is interrupted.

With the environment variable `COLD_KERAS_PAUSE_AT` set to a point's name, a command that reaches
that point writes the point's name to the file `COLD_KERAS_PAUSE_FILE` (when set) and waits there
until it is interrupted (Ctrl-C) or killed; with `COLD_KERAS_PAUSE_COUNT=N` it waits the N-th time
it reaches the point (default the first). With `COLD_KERAS_REACHED_FILE` set, every point reached
appends its name (one line) to that file and the command goes on: a test learns when a stage
started. Without these variables a pause point does nothing.

Points: `example_gen.shard` (a shard is half written), `statistics.computed` (statistics written,
schema and anomalies not yet), `transform.fitted` (normalisation fitted, not yet written),
`train.begin` (training starts: the first step is about to be traced), `train.step` (an in-epoch
backup was just written), `train.validation` (the first validation batch of an epoch is done),
`train.epoch` (an epoch finished and backed up), `train.fitted` (training finished, the best
checkpoint not yet scored), `tune.epoch` (an epoch of a trial
finished), `evaluate.partial` (some output files written, `report.json` not yet) and
`export.saved` (the SavedModel written to its temporary folder, not yet published) and
`predict.recording` (a recording's prediction files written, the others and the summary not yet).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_POINT = "COLD_KERAS_PAUSE_AT"
ENV_FILE = "COLD_KERAS_PAUSE_FILE"
ENV_COUNT = "COLD_KERAS_PAUSE_COUNT"
ENV_REACHED = "COLD_KERAS_REACHED_FILE"
_arrivals: dict = {}


def pause_point(name: str) -> None:
    """Waits here forever when `COLD_KERAS_PAUSE_AT` is `name` (at its `COLD_KERAS_PAUSE_COUNT`-th
    arrival); returns at once otherwise."""
    reached = os.environ.get(ENV_REACHED)
    if reached:
        with open(reached, "a") as handle:
            handle.write(name + "\n")
    if os.environ.get(ENV_POINT) != name:
        return
    _arrivals[name] = _arrivals.get(name, 0) + 1
    if _arrivals[name] < int(os.environ.get(ENV_COUNT) or 1):
        return
    marker = os.environ.get(ENV_FILE)
    if marker:
        Path(marker).write_text(name)
    while True:
        time.sleep(0.05)


def pause_callback(name: str):
    """A Keras callback that calls `pause_point(name)` at the end of every epoch."""
    import keras

    class PauseAtEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pause_point(name)

    return PauseAtEpochEnd()


def pause_callbacks(prefix: str, backup=None):
    """Keras callbacks with the pause points `<prefix>.begin`, `.step` (after each in-epoch save of
    `backup`, a `pipelines.runs.backup.StepBackup`), `.validation` and `.epoch` (module docstring). Put
    them after the backup's callbacks, so that a pause finds the backup written."""
    import keras

    class PausePoints(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._saves = 0

        def on_train_begin(self, logs=None):
            pause_point(f"{prefix}.begin")

        def on_epoch_begin(self, epoch, logs=None):
            self._validated = False
            self._saves = getattr(backup, "saves", 0)

        def on_train_batch_end(self, batch, logs=None):
            saves = getattr(backup, "saves", 0)
            if saves != self._saves:
                self._saves = saves
                pause_point(f"{prefix}.step")

        def on_test_batch_end(self, batch, logs=None):
            if not getattr(self, "_validated", True):
                self._validated = True
                pause_point(f"{prefix}.validation")

        def on_epoch_end(self, epoch, logs=None):
            pause_point(f"{prefix}.epoch")

    return [PausePoints()]
