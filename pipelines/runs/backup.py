"""Mid-epoch fault tolerance of the trainer: the backup of a run's whole training state.

`StepBackup` is Keras' `BackupAndRestore` writing the training state (weights, optimiser state,
epoch and step) every `training.backup_every_steps` steps inside an epoch and at every epoch end.
`auto` (the default) backs up whenever about `training.backup_every_seconds` (60) seconds of
training passed since the last backup, so a kill loses at most about a minute of work on any
machine. A backup holds everything that decides the rest of the run (`StepBackup`), and the
trainer's input stream is a pure function of the seed and the epoch
(`pipelines.components.input_pipeline.epoch_stream`), so a run continued from it
(`pipelines.runs.resume.fit_resuming`) ends as the uninterrupted one would. `BestCheckpoint` is the
best checkpoint whose best value so far is part of the backup.
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import keras

from pipelines.core.errors import allow_interrupts, defer_interrupts
from pipelines.core.io_utils import write_text_atomic
from pipelines.runs.checks import DEFAULT_EVERY_SECONDS, LATEST, PREVIOUS, RESUME_GROUP, backup_file_of
from pipelines.runs.checks import resume_point_of as resume_point


class StepBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` saving every `every_steps` steps (or every `every_seconds` seconds with
    `every_steps="auto"`) and at every epoch end, holding everything that decides the rest of the run.

    A backup is one file, `latest.weights.h5`: the weights and the optimiser state (its step, so the
    learning-rate schedule's position, included) as Keras saves them, plus a group
    `cold_keras_resume` with the epoch and the steps done in it, the states of the model's random
    generators (`keras.random.SeedGenerator`: dropout, the Gaussian heads' sampling noise), the
    training metrics accumulated so far in the epoch, the state of the tracked callbacks (`track`:
    the best checkpoint value, the collapse guard's history, ...) and the text of the tracked files
    (`files`: `history.csv`). It is written to `next.weights.h5` and renamed over the last one (which
    is kept as `latest.weights.h5.bkp`), so a kill at any moment leaves one complete backup;
    `training_metadata.json` mirrors the epoch and step for Keras and for people.

    On `fit`'s start the newest complete backup is loaded and everything in it put back (the files
    before any other callback opens them, so the history holds each epoch once); without a backup
    the tracked files of an earlier attempt are removed. The training data's position is
    `pipelines.runs.resume.fit_resuming`'s part.

    Args:
        backup_dir: str. The run's `backup/` folder.
        every_steps: positive int, or "auto" to save by time.
        every_seconds: float. Seconds between saves in "auto" mode.
        files: optional dict name -> path of text files saved with every backup and restored from it.
    """

    def __init__(self, backup_dir, every_steps="auto", every_seconds=DEFAULT_EVERY_SECONDS, files=None):
        super().__init__(str(backup_dir), save_freq=1, double_checkpoint=True, delete_checkpoint=False)
        self.every_steps = every_steps
        self.every_seconds = float(every_seconds)
        self.step_offset = 0  # steps of the current epoch done before this fit started
        self.saves = 0
        self.announce = None  # printed once the backup is loaded, with the restored optimiser step
        self.print_fn = print
        self.files = {name: Path(path) for name, path in (files or {}).items()}
        self.tracked = {}
        self.restored = None  # (epoch, step) of the backup loaded by the last fit, None when it started afresh
        self.steps_per_epoch = None  # set by fit_resuming: no in-epoch backup after an epoch's last step
        self._deferred_epoch_end = False
        self._metric_values = None
        self._steps_since_save = 0
        self._last_save = time.monotonic()

    # ----------------------------------------------------------------------- what is saved

    def track(self, name, callback):
        """Saves `callback.resume_state()` (JSON-able) with every backup and hands it back to
        `callback.restore_state(state)` on resume (`restore_state(None)`: the run starts afresh)."""
        self.tracked[name] = callback
        return callback

    def epoch_end_callback(self):
        """A callback that takes the epoch-end backup; put it after every other callback whose
        epoch-end result belongs to the epoch (history row, best checkpoint, TensorBoard), so that a
        backup saying "epoch e done" never lacks them. `on_epoch_end` of this object then saves
        nothing, and holds Ctrl-C back until that backup is written (keep the callbacks between short)."""
        self._deferred_epoch_end = True
        backup = self

        class SaveAtEpochEnd(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                backup._end_epoch(epoch)

        return SaveAtEpochEnd()

    def resume_point(self):
        """(epoch, step) of the backup the next `fit` continues from, or None."""
        return resume_point(self.backup_dir)

    def _random_variables(self):
        """The model's variables that are neither weights nor metrics: the SeedGenerator states."""
        weights = {id(v) for v in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def _metric_variables(self):
        seen, out = set(), []
        for variable in self.model.metrics_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                out.append(variable)
        return out

    def _runtime(self):
        return {
            "replicas": int(self.model.distribute_strategy.num_replicas_in_sync),
            "policy": keras.config.dtype_policy().name,
            "tensorflow": tf_version(),
        }

    # ----------------------------------------------------------------------- Keras hooks

    def on_train_begin(self, logs=None):
        self._last_save = time.monotonic()
        found = backup_file_of(self.backup_dir)
        if found is None:
            self.restored = None
            self._start_afresh()
        else:
            self._restore(*found)
        if self.announce:
            iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.print_fn(f"{self.announce}; restored optimiser step {iterations}")
            self.announce = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batch_seen = self.step_offset
        if self._metric_values is not None and self.step_offset:
            # fit reset the metrics just before: put back those of the steps done before the backup
            for variable, value in zip(self._metric_variables(), self._metric_values):
                variable.assign(value)
        self._metric_values = None

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_seen = self.step_offset + batch + 1
        self._steps_since_save += 1
        if self.every_steps == "auto":
            due = time.monotonic() - self._last_save >= self.every_seconds
        else:
            due = self._steps_since_save >= self.every_steps
        if self.steps_per_epoch is not None and self._last_batch_seen >= self.steps_per_epoch:
            due = False  # the epoch-end backup, after validation, follows
        if due:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if not self._deferred_epoch_end:
            self._end_epoch(epoch)
        else:  # Ctrl-C from here to the epoch-end backup waits for it: the finished epoch is kept
            defer_interrupts()

    def _end_epoch(self, epoch):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        self.step_offset = 0
        self._save()

    def _save(self):
        defer_interrupts()  # a Ctrl-C meanwhile takes effect once this backup is complete
        try:
            self._save_model()
        finally:
            allow_interrupts()
        self.saves += 1
        self._steps_since_save = 0
        self._last_save = time.monotonic()

    # ----------------------------------------------------------------------- files

    def _save_model(self):
        """Writes the backup to a new file and renames it over the last one (class docstring)."""
        import h5py
        import numpy as np

        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / PARTIAL
        self.model.save_weights(str(partial), overwrite=True)
        random_vars, metric_vars = self._random_variables(), self._metric_variables()
        state = {
            "epoch": int(self._current_epoch),
            "batch": int(self._last_batch_seen),
            "random_paths": [v.path for v in random_vars],
            "metric_paths": [v.path for v in metric_vars],
            "callbacks": {name: callback.resume_state() for name, callback in self.tracked.items()},
            "files": {name: (path.read_text() if path.is_file() else None) for name, path in self.files.items()},
            "runtime": self._runtime(),
        }
        with h5py.File(partial, "a") as handle:
            group = handle.create_group(RESUME_GROUP)
            group.attrs["epoch"] = state["epoch"]
            group.attrs["batch"] = state["batch"]
            group.create_dataset("state", data=json.dumps(state))
            for name, variables in (("random", random_vars), ("metrics", metric_vars)):
                values = group.create_group(name)
                for index, variable in enumerate(variables):
                    values.create_dataset(str(index), data=np.asarray(keras.ops.convert_to_numpy(variable)))
        _fsync(partial)
        latest = folder / LATEST
        if latest.exists():
            os.replace(latest, folder / PREVIOUS)
        os.replace(partial, latest)
        metadata = {"epoch": state["epoch"], "batch": state["batch"]}
        write_text_atomic(Path(self._training_metadata_path), json.dumps(metadata))

    def _start_afresh(self):
        for path in self.files.values():
            path.unlink(missing_ok=True)  # an earlier attempt's rows, written before its first backup
        for callback in self.tracked.values():
            callback.restore_state(None)

    def _restore(self, path, epoch, step):
        import h5py

        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(str(path))
        self.model._initial_epoch = epoch
        self.restored = (epoch, step)
        with h5py.File(path, "r") as handle:
            if RESUME_GROUP not in handle:
                self.print_fn(
                    f"note: the backup in {self.backup_dir} holds weights and optimiser state only (written by an "
                    "earlier version): the run continues, but not exactly as it would have without the interruption"
                )
                return
            group = handle[RESUME_GROUP]
            state = json.loads(_text(group["state"][()]))
            random_values = [group["random"][str(i)][()] for i in range(len(state["random_paths"]))]
            metric_values = [group["metrics"][str(i)][()] for i in range(len(state["metric_paths"]))]
        random_vars = self._random_variables()
        if [v.path for v in random_vars] == state["random_paths"]:
            for variable, value in zip(random_vars, random_values):
                variable.assign(value)
        else:
            self.print_fn("note: the model's random generators differ from the backup's; they start afresh")
        metric_vars = self._metric_variables()
        self._metric_values = metric_values if [v.path for v in metric_vars] == state["metric_paths"] else None
        for name, text in state["files"].items():
            if name in self.files:
                if text is None:
                    self.files[name].unlink(missing_ok=True)
                else:
                    write_text_atomic(self.files[name], text)
        for name, callback in self.tracked.items():
            if name in state["callbacks"]:
                callback.restore_state(state["callbacks"][name])
        note = runtime_difference(state.get("runtime") or {}, self._runtime())
        if note:
            self.print_fn(note)


PARTIAL = "next.weights.h5"


def tf_version():
    import tensorflow as tf

    return tf.__version__


def runtime_difference(saved: dict, now: dict):
    """One line when the backup was written under another number of replicas, precision policy or
    TensorFlow version (the run then continues, but cannot match an uninterrupted run exactly)."""
    names = {"replicas": "replicas", "policy": "precision policy", "tensorflow": "TensorFlow"}
    changes = [
        f"{names[key]} {saved[key]} -> {now[key]}" for key in names if key in saved and saved[key] != now.get(key)
    ]
    if not changes:
        return None
    return (
        f"note: the backup was written with other settings of this machine ({', '.join(changes)}): the run continues "
        "from it, but its results will differ slightly from an uninterrupted run's"
    )


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _fsync(path):
    """Flushes a written file to disk before it is renamed into place. A file system that cannot
    fsync (EINVAL, ENOTSUP) keeps the rename's atomicity only; any other error is raised."""
    try:
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` (`save_best_only`) whose best value so far is part of the backup
    (`StepBackup.track`): a resumed run keeps the checkpoint the uninterrupted run would keep.

    When the optimiser keeps a moving average of the weights (`use_ema`, `training.ema_momentum`), the
    checkpoint holds the averaged weights (those the validation scored); the training weights are put
    back, bit for bit, once it is written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._fresh_best = self.best

    def _save_model(self, epoch, batch, logs):
        # Written to a new file and renamed: a kill while saving never leaves a broken checkpoint.
        final = Path(self.filepath)
        partial = final.with_name(f".partial.{final.name}")
        partial.unlink(missing_ok=True)
        self.filepath = str(partial)
        optimizer = self.model.optimizer
        averaged = bool(getattr(optimizer, "use_ema", False)) and hasattr(optimizer, "swap_average_weights")
        if averaged:
            optimizer.swap_average_weights()
        try:
            super()._save_model(epoch, batch, logs)
        finally:
            self.filepath = str(final)
            if averaged:
                optimizer.swap_average_weights()
        if partial.exists():
            os.replace(partial, final)

    def resume_state(self):
        return {"best": None if self.best is None else float(self.best)}

    def restore_state(self, state):
        if state is None:  # the run starts afresh: an earlier attempt's checkpoint does not count
            self.best = self._fresh_best
        else:
            self.best = None if state.get("best") is None else float(state["best"])
