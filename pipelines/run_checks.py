"""Checks of a run's settings and of its run directory that need no TensorFlow: they run before
TensorFlow is imported, so a bad value is reported at once, naming its flag, file or key."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines import settings

DEFAULT_EVERY_SECONDS = settings.TrainingConfig().backup_every_seconds
METADATA = "training_metadata.json"  # written by Keras' BackupAndRestore


def backup_settings(training: dict, source="config"):
    """(`every_steps`, `every_seconds`) from the `training` section; ConfigError names the bad key.

    `training.backup_every_steps`: a positive integer, or `auto` (default: by time).
    `training.backup_every_seconds`: seconds between backups in `auto` mode (default 60).
    """
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


def resume_point_of(backup_dir):
    """(epoch, step) of the backup in `backup_dir` (0-based epoch; `step` = steps done in that
    epoch, 0 at an epoch boundary), or None when there is no backup."""
    path = Path(backup_dir) / METADATA
    if not path.is_file() or not (Path(backup_dir) / "latest.weights.h5").is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return int(data["epoch"]), int(data.get("batch", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None
