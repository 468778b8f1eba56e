"""Numeric CSV tables read fast (pandas' C engine) with precise errors (file, line, column).

Corpus files are read with pandas' C engine after the separator has been sniffed from the first
line (`sep=None` would need the slow Python engine). pandas' own messages for bad input are
vague or missing (a short row silently becomes NaN), so whenever the fast read is not clean the
file is scanned line by line with the `csv` module to find the first offending cell, and that
cell is reported as `file:line:column`.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from pipelines.core.errors import DataError

SEPARATORS = (";", ",", "\t")
_QUOTES = "'\" "
# Largest magnitude a value may have: every number is stored as float32, where anything larger is inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass
class Table:
    """A parsed table.

    Attributes:
        path: Path. The file.
        sep: str. The separator sniffed from the first line.
        header: list of str (quotes stripped), or None when the file has no header.
        text: list of object arrays [R], one per leading text column (e.g. the `name` column).
        values: float64 array [R, C], the numeric columns after the text columns.
        lines: int array [R], the 1-based line number of every row (for error messages).
    """

    path: Path
    sep: str
    header: Optional[list]
    text: list
    values: np.ndarray
    lines: np.ndarray

    def column_number(self, index: int) -> int:
        """1-based column number in the file of numeric column `index`."""
        return len(self.text) + index + 1


def is_number(cell: str) -> bool:
    try:
        float(cell.strip())
    except ValueError:
        return False
    return True


def split_line(line: str, sep: str) -> list:
    """Splits one line the way pandas does (double quotes protect separators)."""
    return next(csv.reader([line], delimiter=sep, quotechar='"'), [])


def clean_name(cell: str) -> str:
    return cell.strip().strip(_QUOTES)


def first_line(path: Path) -> str:
    """The first line of `path` without its line break; DataError if the file is empty."""
    try:
        with open(path, newline="") as handle:
            line = handle.readline()
    except UnicodeDecodeError as error:
        raise DataError(f"not a text file ({error.reason})", path) from None
    except OSError as error:
        raise DataError(f"cannot read the file ({error.strerror})", path) from None
    if not line.strip():
        raise DataError("empty file" if not line else "the first line is empty", path, 1 if line else None)
    return line.rstrip("\r\n")


def sniff_separator(path: Path, line: str, default=None) -> str:
    """The separator of a file from its first line: whichever of `;`, `,` and tab occurs most.

    `default` is returned for a line without any of them (a one-column file); without a default
    that is an error.
    """
    counts = {sep: len(split_line(line, sep)) - 1 for sep in SEPARATORS}
    sep = max(SEPARATORS, key=lambda s: counts[s])
    if counts[sep] == 0 and default is not None:
        return default
    if counts[sep] == 0:
        raise DataError("cannot tell the separator: the first line has no ';', ',' or tab", path, 1)
    return sep


def detect_header(cells: list, text_columns: int) -> bool:
    """Whether a first row is a header: its first numeric cell, or all its numeric cells, are not numbers.

    A row whose first numeric cell (e.g. the timestamp) parses but some later cell does not is a data
    row with a bad value, and is reported as such by the reader.
    """
    numeric = cells[text_columns:]
    if not numeric:
        return False
    return not is_number(numeric[0]) or not any(is_number(cell) for cell in numeric)


def read_table(path, *, text_columns=1, header="auto", allow_empty=False, min_numeric_columns=1) -> Table:
    """Reads a table of `text_columns` text columns followed by numeric columns.

    Args:
        path: str or Path.
        text_columns: int. Leading columns kept as text (not checked). Defaults to 1 (a name).
        header: True (the first line is a header), False (no header) or "auto" (see
            `detect_header`). Defaults to "auto".
        allow_empty: bool. Empty numeric cells (and `nan`) are returned as NaN instead of being an
            error; infinities are still an error. Defaults to False.
        min_numeric_columns: int. Fewer numeric columns than this is an error. Defaults to 1.

    Returns:
        `Table`.

    Raises:
        DataError: empty file, no data rows, a row with a different number of columns, a
            non-numeric, empty, NaN or infinite value; with the file, line and column.
    """
    path = Path(path)
    line = first_line(path)
    sep = sniff_separator(path, line, default="," if text_columns == 0 else None)
    cells = split_line(line, sep)
    has_header = detect_header(cells, text_columns) if header == "auto" else bool(header)
    ncols = len(cells)
    if ncols - text_columns < min_numeric_columns:
        raise DataError(
            f"expected at least {text_columns + min_numeric_columns} columns separated by '{sep}', found {ncols}",
            path,
            1,
        )
    skip = 1 if has_header else 0
    try:
        frame = pd.read_csv(
            path,
            sep=sep,
            header=None,
            skiprows=skip,
            skip_blank_lines=False,
            dtype={i: str for i in range(text_columns)},
            engine="c",
            low_memory=False,
        )
    except pd.errors.EmptyDataError:
        frame = None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError):
        _diagnose(path, sep, skip, ncols, text_columns, allow_empty)
        raise DataError("cannot parse the file", path) from None
    if frame is None or frame.shape[0] == 0:
        raise DataError("no data rows" + (" after the header" if has_header else ""), path)
    lines = np.arange(frame.shape[0]) + skip + 1
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank], lines[~blank]
        if frame.shape[0] == 0:
            raise DataError("no data rows" + (" after the header" if has_header else ""), path)
    numeric = frame.iloc[:, text_columns:]
    clean = frame.shape[1] == ncols and all(pd.api.types.is_numeric_dtype(t) for t in numeric.dtypes)
    values = None
    if clean:
        values = numeric.to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            clean = allow_empty and not np.isinf(values).any()
            if clean:
                # NaN may also come from a short row: only a scan can tell the two apart.
                clean = not _has_short_rows(path, sep, skip, ncols)
    if not clean:
        _diagnose(path, sep, skip, ncols, text_columns, allow_empty)
        raise DataError("cannot parse the file", path)
    check_float32(values, path, lines, text_columns)
    text = [frame.iloc[:, i].to_numpy(dtype=object) for i in range(text_columns)]
    head = [clean_name(cell) for cell in cells] if has_header else None
    return Table(path=path, sep=sep, header=head, text=text, values=values, lines=lines)


def _lines(path: Path, skip: int):
    with open(path, newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= skip:
                continue
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def _has_short_rows(path: Path, sep: str, skip: int, ncols: int) -> bool:
    return any(len(split_line(line, sep)) != ncols for _, line in _lines(path, skip))


def _diagnose(path: Path, sep: str, skip: int, ncols: int, text_columns: int, allow_empty: bool):
    """Raises a DataError at the first bad line/cell of the file (returns if it finds none)."""
    for number, line in _lines(path, skip):
        cells = split_line(line, sep)
        if len(cells) != ncols:
            raise DataError(
                f"expected {ncols} columns separated by '{sep}' (as on line {skip or 1}), found {len(cells)}",
                path,
                number,
            )
        for column in range(text_columns, ncols):
            cell = cells[column].strip()
            if not cell:
                if allow_empty:
                    continue
                raise DataError("empty value", path, number, column + 1)
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{cell!r} is not a number", path, number, column + 1) from None
            if math.isnan(value) and not allow_empty:
                raise DataError("NaN value", path, number, column + 1)
            if math.isinf(value):
                raise DataError(f"infinite value {cell!r}", path, number, column + 1)
            if abs(value) > FLOAT32_MAX:
                raise DataError(_overflow_message(cell), path, number, column + 1)


def _overflow_message(value) -> str:
    return (
        f"value {value} does not fit a 32-bit float and would become infinite "
        f"(expected a magnitude of at most {FLOAT32_MAX:.4g})"
    )


def check_float32(values: np.ndarray, path, lines=None, text_columns=0) -> None:
    """DataError at the first value of `values` [R, C] that becomes infinite as float32.

    `lines` gives the file line of each row and `text_columns` the columns before column 0; without
    `lines` the position is given as row and column indices (0-based) of an array file.
    """
    with np.errstate(invalid="ignore"):
        big = np.abs(values) > FLOAT32_MAX
    if not big.any():
        return
    row, column = (int(i) for i in np.argwhere(big)[0])
    if lines is None:
        raise DataError(
            f"{_overflow_message(repr(float(values[row, column])))} at frame {row}, feature {column} (0-based)", path
        )
    raise DataError(
        _overflow_message(repr(float(values[row, column]))), path, int(lines[row]), text_columns + column + 1
    )
