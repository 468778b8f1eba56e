"""Checks of a run's settings and of its run directory that need no TensorFlow: they run before
TensorFlow is imported, so a bad value is reported at once, naming its flag, file or key."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import settings

DEFAULT_EVERY_SECONDS = settings.TrainingConfig().backup_every_seconds
METADATA = "training_metadata.json"  # written by Keras' BackupAndRestore


def backup_settings(training, source="config"):
    """(`every_steps`, `every_seconds`) from the `training` section (a TrainingConfig, or a mapping
    checked here); ConfigError names the bad key.

    `training.backup_every_steps`: a positive integer, or `auto` (default: by time).
    `training.backup_every_seconds`: seconds between backups in `auto` mode (default 60).
    """
    if not isinstance(training, settings.TrainingConfig):
        training = settings.parse_section(settings.TrainingConfig, training, "training", source)
    seconds = training.backup_every_seconds
    return training.backup_every_steps or "auto", float(DEFAULT_EVERY_SECONDS if seconds is None else seconds)


def _without_epochs(config: dict) -> dict:
    out = dict(config)
    out["training"] = {k: v for k, v in (config.get("training") or {}).items() if k != "epochs"}
    return out


def epochs_extension(saved: dict, new: dict):
    """(old, new) epochs when `new` differs from the `saved` settings of a run only by more
    training epochs, which continues that run; None otherwise."""
    old_epochs = (saved.get("training") or {}).get("epochs")
    new_epochs = (new.get("training") or {}).get("epochs")
    if not (isinstance(old_epochs, int) and isinstance(new_epochs, int)) or new_epochs <= old_epochs:
        return None
    return (old_epochs, new_epochs) if _without_epochs(saved) == _without_epochs(new) else None


LATEST = "latest.weights.h5"
PREVIOUS = "latest.weights.h5.bkp"
RESUME_GROUP = "cold_keras_resume"  # the trainer's resume state, inside the backup's weights file


def backup_file_of(backup_dir):
    """(path, epoch, step) of the backup to resume from, or None when there is none.

    The trainer writes a backup to a new file and renames it over `latest.weights.h5` (the one
    before it becomes `latest.weights.h5.bkp`), so a kill at any moment leaves one complete
    file; its epoch and step are stored inside it, beside the weights and the rest of the
    state (`pipelines.runs.backup`). A backup written by Keras' own `BackupAndRestore` (without that
    state) is described by `training_metadata.json`.
    """
    import h5py

    folder = Path(backup_dir)
    for name in (LATEST, PREVIOUS):
        path = folder / name
        if not path.is_file():
            continue
        try:
            with h5py.File(path, "r") as handle:
                if RESUME_GROUP in handle:
                    attrs = handle[RESUME_GROUP].attrs
                    return path, int(attrs["epoch"]), int(attrs["batch"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if name == LATEST:
            legacy = _legacy_point(folder)
            if legacy is not None:
                return (path, *legacy)
    return None


def _legacy_point(folder: Path):
    try:
        data = json.loads((folder / METADATA).read_text())
        return int(data["epoch"]), int(data.get("batch", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resume_point_of(backup_dir):
    """(epoch, step) of the backup in `backup_dir` (0-based epoch; `step` = steps done in that
    epoch, 0 at an epoch boundary), or None when there is no backup."""
    found = backup_file_of(backup_dir)
    return None if found is None else found[1:]
