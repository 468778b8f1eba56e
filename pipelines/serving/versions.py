"""The folder of an exported model, `<base-dir>/<NAME>/`: the model's name, its numbered version
folders, and the hidden temporary folders of exports that did not finish.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pipelines.core.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TMP_PREFIX = ".tmp-export-"


def check_name(name: str) -> None:
    """Refuses a model name that is not one folder name (letters, digits, `_`, `-`, `.`)."""
    if not _NAME.match(name or ""):
        raise ConfigError(
            f"model name {name!r}: use letters, digits, '_', '-' and '.' (no '/'), starting with a letter or digit"
        )


def existing_versions(model_root) -> list:
    """Numeric version folders under `model_root`, sorted."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_root) -> int:
    """One more than the highest version folder under `model_root`, 1 for the first."""
    versions = existing_versions(model_root)
    return versions[-1] + 1 if versions else 1


def _process_runs(pid: int) -> bool:
    """True while process `pid` exists (also one of another user, which we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(model_root, max_age_seconds: float = 3600.0) -> list:
    """Removes the hidden temporary folders of exports that did not finish; returns their paths.

    A temporary folder `.tmp-export-<version>-<pid>-...` is stale when process <pid> no longer
    runs; a folder without a readable pid when it is older than `max_age_seconds`.
    """
    import time

    root = Path(model_root)
    removed = []
    if not root.is_dir():
        return removed
    for path in root.glob(f"{TMP_PREFIX}*"):
        parts = path.name[len(TMP_PREFIX) :].split("-")
        pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
        if pid is not None and pid != os.getpid():
            if _process_runs(pid):
                continue  # that export is still running
        elif pid is None and time.time() - path.stat().st_mtime < max_age_seconds:
            continue
        elif pid == os.getpid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
