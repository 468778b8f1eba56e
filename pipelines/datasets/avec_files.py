"""The files of an AVEC-layout corpus read with precise errors: label files, feature files,
`partitions.csv`, and the frame hop told from the timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets.avec_folders import PRESENT_COLUMN, FeatureFolder
from pipelines.datasets.checks import HOP_TOLERANCE, check_line_break, check_names
from pipelines.datasets.tables import clean_name, read_table

PARTITIONS_FILE = "partitions.csv"


def read_partitions(path: Path) -> dict:
    """`partitions.csv` (header `name;partition`): recording name -> train, devel or test. {} without one."""
    if not path.is_file():
        return {}
    table = read_table(path, text_columns=2, min_numeric_columns=0, header=True)
    if [cell.lower() for cell in table.header[:2]] != ["name", "partition"]:
        raise DataError(f"the header must be name;partition, found {';'.join(table.header)}", path, 1)
    partitions = {}
    for name, partition, line in zip(table.text[0], table.text[1], table.lines):
        name, partition = clean_name(str(name)), clean_name(str(partition)).lower()
        if partition not in features.PARTITIONS:
            raise DataError(f"partition {partition!r} (expected {', '.join(features.PARTITIONS)})", path, int(line), 2)
        if name in partitions:
            raise DataError(f"recording {name!r} is listed twice", path, int(line), 1)
        partitions[name] = partition
    return partitions


def read_labels(path: Path, hop: float, name=None, strict=True):
    """Returns (timestamps, arousal or None, valence or None) as float arrays.

    With `name`, the name column must name that recording (see `check_names`).
    """
    table = read_table(path, text_columns=1, header=True, allow_empty=True)
    if name is not None:
        check_line_break(path, strict)
        check_names(table, name, strict)
    t_col, a_col, v_col = _label_columns(table)
    timestamps = table.values[:, t_col]
    _require_values(table, t_col, "timestamp")
    steps = np.diff(timestamps)
    bad = np.abs(steps - hop) > HOP_TOLERANCE * hop
    if bad.any():
        i = int(np.argmax(bad)) + 1
        raise DataError(
            f"timestamp step of {steps[i - 1]:.6g} s, but the corpus hop is {hop:.6g} s",
            path,
            int(table.lines[i]),
            table.column_number(t_col),
        )
    if a_col is None or (np.isnan(table.values[:, a_col]).all() and np.isnan(table.values[:, v_col]).all()):
        return timestamps, None, None
    labels = []
    for column, name in ((a_col, "arousal"), (v_col, "valence")):
        values = table.values[:, column]
        _require_values(table, column, name)
        outside = np.abs(values) > 1.0
        if outside.any():
            i = int(np.argmax(outside))
            raise DataError(
                f"{name} {values[i]:.6g} is outside [-1, 1]", path, int(table.lines[i]), table.column_number(column)
            )
        labels.append(values.astype(np.float32))
    return timestamps, labels[0], labels[1]


def _label_columns(table):
    """(timestamp, arousal, valence) numeric column indices; arousal/valence None when absent."""
    header = [name.lower() for name in table.header]
    if "timestamp" not in header:
        raise DataError(
            "the label file header has no 'timestamp' column (expected name;timestamp;arousal;valence;liking)",
            table.path,
            1,
        )
    index = {name: header.index(name) - 1 for name in ("timestamp", "arousal", "valence") if name in header}
    if ("arousal" in index) != ("valence" in index):
        raise DataError(
            "the label file has an arousal column but no valence column, or the other way round", table.path, 1
        )
    if min(index.values()) < 0:
        raise DataError("the first column of a label file is the name", table.path, 1)
    return index["timestamp"], index.get("arousal"), index.get("valence")


def _require_values(table, column: int, name: str) -> None:
    missing = np.isnan(table.values[:, column])
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(f"missing {name} value", table.path, int(table.lines[i]), table.column_number(column))


def read_features(path: Path, folder: FeatureFolder, name=None, strict=True, lines=None):
    """(timestamps, features, presence or None) of one feature file."""
    table = read_table(path, text_columns=1, min_numeric_columns=2)
    dim = table.values.shape[1] - 1 - folder.presence
    if dim != folder.dim:
        raise DataError(f"{dim} feature columns, but {folder.first_file} has {folder.dim}", path, int(table.lines[0]))
    if name is not None:
        check_line_break(path, strict)
        check_names(table, name, strict)
    if lines is not None:
        lines[path] = table.lines
    presence = None
    if folder.presence:
        presence = table.values[:, -1]
        bad = (presence != 0) & (presence != 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{PRESENT_COLUMN} is {presence[i]:.6g} (expected 0 or 1)",
                path,
                int(table.lines[i]),
                table.column_number(table.values.shape[1] - 1),
            )
        return table.values[:, 0], table.values[:, 1:-1], presence.astype(np.float32)
    return table.values[:, 0], table.values[:, 1:], presence


def corpus_hop(entries: dict, order: list, modalities: dict) -> float:
    """The frame hop of the corpus, from the first label file in corpus order (else the first feature file)."""
    for file_name in order:
        entry = entries[file_name]
        if entry.label_path is not None:
            table = read_table(entry.label_path, text_columns=1, header=True, allow_empty=True)
            return _hop_from(table.values[:, _label_columns(table)[0]], entry.label_path)
    entry_name = order[0]
    folder = next(folder for folders in modalities.values() for folder in folders if entry_name in folder.files)
    path = folder.path / entry_name
    return _hop_from(read_table(path, text_columns=1, min_numeric_columns=2).values[:, 0], path)


def _hop_from(timestamps: np.ndarray, path: Path) -> float:
    if len(timestamps) < 2:
        raise DataError("at least two rows are needed to tell the frame hop from the timestamps", path)
    hop = float(np.median(np.diff(timestamps)))
    if not hop > 0:
        raise DataError("timestamps do not increase", path)
    return round(hop, 9)
