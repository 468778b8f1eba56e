"""Checks of corpus files and folders that more than one adapter makes.

* `check_names`: the name column of a file names its recording on every row (quoting aside).
* `check_line_break`: a file whose last line has no line break may have been cut off.
* `check_alignment`: a feature file's timestamps against the label rows (or frame grid) they pair with.
* `chosen_folders`: the feature folders chosen for a modality, as a list without repeats.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.datasets.tables import clean_name

# Relative tolerance on the step between label timestamps.
HOP_TOLERANCE = 0.01
# A feature row's timestamp may differ from the label row it is paired with by this fraction of the hop
# (strict); lenient reading accepts anything under half a hop, with a warning.
ALIGN_TOLERANCE = 0.05
LENIENT_ALIGN = 0.5


def check_line_break(path: Path, strict=True) -> None:
    """A file whose last line has no line break may have been cut off in the middle of a value.

    Strict: an error; lenient: a warning naming the file.
    """
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) in (b"\n", b"\r"):
            return
    message = "the last line does not end with a line break: the file may be cut off (expected a complete last line"
    if strict:
        raise DataError(message + "; --lenient accepts it)", path)
    warnings.warn(f"{path}: {message}); accepted (lenient)", stacklevel=3)


def check_names(table, expected: str, strict=True) -> None:
    """The name column (the first text column) of `table` must name recording `expected` on every row.

    `expected`, `'expected'` and `"expected"` are the same name. Any other quoting or padding
    (`'expected`, ` expected`) is an error when `strict`, else accepted with a warning naming the
    file; a different name is always an error.
    """
    cells = np.array([cell if isinstance(cell, str) else "" for cell in table.text[0]], dtype=object)
    exact = (cells == expected) | (cells == f"'{expected}'")
    if exact.all():
        return
    cleaned = np.array([clean_name(cell) for cell in cells], dtype=object)
    wrong = cleaned != expected
    if wrong.any():
        i = int(np.argmax(wrong))
        found = "an empty name" if not cleaned[i] else f"name {cells[i]!r}"
        raise DataError(
            f"{found} in a file of recording {expected} (expected {expected!r} on every row)",
            table.path,
            int(table.lines[i]),
            1,
        )
    i = int(np.argmax(~exact))
    if strict:
        raise DataError(
            f"name {cells[i]!r} differs from {expected!r} in its quoting (expected {expected!r} or "
            f"'{expected}'; --lenient accepts it)",
            table.path,
            int(table.lines[i]),
            1,
        )
    warnings.warn(
        f"{table.path}: the name column differs from {expected!r} in its quoting from line "
        f"{int(table.lines[i])} on; accepted (lenient)",
        stacklevel=2,
    )


def check_alignment(
    path: Path,
    stamps: np.ndarray,
    lines: np.ndarray,
    reference: np.ndarray,
    hop: float,
    strict=True,
    against="the label row it is paired with",
) -> None:
    """Each row's timestamp (column 2 of `path`) against the reference row it is paired with.

    A file whose own hop differs from `hop` is an error naming both hops. Otherwise a row may differ
    by `ALIGN_TOLERANCE` of the hop (strict) or by less than half a hop (lenient, with a warning).
    """
    if len(stamps) >= 2:
        own = float(np.median(np.diff(stamps)))
        if not abs(own - hop) <= HOP_TOLERANCE * hop:
            raise DataError(
                f"the timestamps advance by {own:.6g} s per row, but the hop of the labels is "
                f"{hop:.6g} s (expected rows {hop:.6g} s apart)",
                path,
                int(lines[1]),
                2,
            )
    m = min(len(stamps), len(reference))
    drift = np.abs(stamps[:m] - reference[:m])
    limit = LENIENT_ALIGN * hop if not strict else ALIGN_TOLERANCE * hop
    bad = ~(drift <= limit) if strict else ~(drift < limit)
    if bad.any():
        i = int(np.argmax(bad))
        hint = "" if not strict or drift[i] >= LENIENT_ALIGN * hop else "; --lenient accepts less than half a hop"
        at = "" if against.endswith(" at") else " is at"
        raise DataError(
            f"timestamp {stamps[i]:.6g} s, but {against}{at} {reference[i]:.6g} s (expected within "
            f"{limit:.3g} s{hint})",
            path,
            int(lines[i]),
            2,
        )
    off = ~(drift <= ALIGN_TOLERANCE * hop)
    if off.any():
        i = int(np.argmax(off))
        warnings.warn(
            f"{path}: timestamps drift up to {float(drift.max()):.3g} s from the labels' (first on line "
            f"{int(lines[i])}); accepted, less than half the {hop:.6g} s hop (lenient)",
            stacklevel=2,
        )


def chosen_folders(modality: str, names, none_chosen: str) -> list:
    """The feature folder names chosen for `modality` (one name, a path or a list) as a list of str.

    Raises:
        ConfigError: `none_chosen` when there is none, or a folder named twice.
    """
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    names = [str(name) for name in (names or [])]
    if not names:
        raise ConfigError(none_chosen)
    if len(set(names)) != len(names):
        raise ConfigError(f"{modality} feature folders repeat a folder: {', '.join(names)}")
    return names
