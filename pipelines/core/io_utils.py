"""Small file helpers: artefacts are written to a temporary name and renamed into place."""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(path) -> None:
    """Gives `path` (and, for a folder, everything under it) the permissions a plain `open`/`mkdir`
    would have given: 0o666 / 0o777 minus the umask (0644 / 0755 with the usual umask 022).

    Temporary files and folders (`tempfile.mkstemp`/`mkdtemp`) are private (0600 / 0700), which
    would hide an artefact from other users, e.g. TF Serving running as another account.
    """
    mask = current_umask()
    path = Path(path)
    paths = [path] + (sorted(path.rglob("*")) if path.is_dir() else [])
    for item in paths:
        if item.is_symlink():
            continue
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def write_bytes_atomic(path, data: bytes) -> None:
    """Writes `data` to `path` so that a crash never leaves a half-written file under that name.

    The file gets the usual permissions (0o666 minus the umask), not the private ones of a
    temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically, as `write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def save_figure_atomic(fig, path, dpi=90) -> None:
    """Writes a matplotlib figure to `path` as PNG atomically and closes it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


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
    """`node` ready for strict JSON: every non-finite float (NaN, inf) becomes None (JSON has no NaN),
    NumPy scalars become Python numbers and tuples lists, at any depth.

    >>> finite_or_none({"ccc": float("nan"), "n": (1, 2.5)})
    {'ccc': None, 'n': [1, 2.5]}
    """
    if isinstance(node, dict):
        return {key: finite_or_none(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [finite_or_none(value) for value in node]
    if isinstance(node, bool):
        return node
    if isinstance(node, numbers.Integral):
        return int(node)
    if isinstance(node, numbers.Real):
        return float(node) if math.isfinite(node) else None
    return node


def file_digest(path, chunk_size=1 << 20) -> str:
    """The hex sha256 digest of a file's bytes: a fingerprint that changes with the content, even
    when an edit keeps the file's size and modification time."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
