"""Named pause points, for testing what a command leaves behind when it is interrupted.

With the environment variable `COLD_KERAS_PAUSE_AT` set to a point's name, a command that reaches
that point writes the point's name to the file `COLD_KERAS_PAUSE_FILE` (when set) and waits there
until it is interrupted (Ctrl-C) or killed. Without the variable a pause point does nothing.

Points: `example_gen.shard` (a shard is half written), `statistics.computed` (statistics written,
schema and anomalies not yet), `transform.fitted` (normalisation fitted, not yet written),
`train.epoch` (an epoch finished and backed up), `tune.epoch` (an epoch of the first trial
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


def pause_point(name: str) -> None:
    """Waits here forever when `COLD_KERAS_PAUSE_AT` is `name`; returns at once otherwise."""
    if os.environ.get(ENV_POINT) != name:
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
