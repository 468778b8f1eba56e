"""Small file helpers: artefacts are written to a temporary name and renamed into place."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def write_text_atomic(path, text: str) -> None:
    """Writes `text` to `path` so that a crash never leaves a half-written file under that name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path, data) -> None:
    """Writes `data` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def read_current_json(path, data_key: str, format_version: int):
    """The JSON artefact at `path` if it was made from the same data and format, else None.

    A missing, unreadable or stale file (other `data_key` or `format_version`) means the
    artefact has to be computed again.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return None
    if isinstance(old, dict) and old.get("format_version") == format_version and old.get("data_key") == data_key:
        return old
    return None


def finite_or_none(node):
    """`node` with every non-finite float (NaN, inf) replaced by None, for strict JSON."""
    if isinstance(node, dict):
        return {key: finite_or_none(value) for key, value in node.items()}
    if isinstance(node, list):
        return [finite_or_none(value) for value in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node
