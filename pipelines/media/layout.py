"""The inputs of `pipelines.extract` (media files, partitions, label files) and the corpus folder it writes.

Inputs: files, or folders holding media files directly and, optionally, in subfolders named
`train`, `devel` and `test` (any case), which give the recordings in them that partition. Other
subfolders are not searched (an output folder inside an input folder is never read back). A
recording's name is its file's stem, whatever it holds (spaces, dots, any script); two inputs with
one stem are an error naming both. A label file `<stem>.csv` beside a media file labels it.

Output (the AVEC layout that `--dataset avec` reads, under the recordings' own names)::

    OUT/<feature set>/<name>.csv   name;frameTime;<features>       a row every 0.1 s, the name quoted
    OUT/labels/<name>.csv          name;timestamp;arousal;valence  when a label file was given
    OUT/partitions.csv             name;partition                  when partition subfolders were used
    OUT/faces/<name>.npz           raw mode: `faces` uint8 [N, S, S, 3], `present` uint8 [N]
    OUT/audio/<name>.wav           raw mode: 16-bit PCM mono
    OUT/extract.json               the manifest
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Optional

import numpy as np

from pipelines.core.errors import ConfigError, DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".mts")
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
PARTITIONS = ("train", "devel", "test")
LABELS_FOLDER = "labels"
PARTITIONS_FILE = "partitions.csv"
FACES_FOLDER = "faces"
WAVEFORM_FOLDER = "audio"
MANIFEST = "extract.json"
HOP = 0.1
HOP_TOLERANCE = 0.01  # of the hop: how far a label timestamp may lie from its grid point
LABEL_COLUMNS = ("timestamp", "arousal", "valence")


@dataclasses.dataclass
class Source:
    """One recording to extract: its name, media file, partition (or None) and label file (or None)."""

    name: str
    path: Path
    partition: Optional[str] = None
    label_path: Optional[Path] = None


def _is_media(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in MEDIA_EXTENSIONS


def _listing(folder: Path) -> list:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise DataError(f"cannot list the folder ({error.strerror})", folder) from None


def find_sources(inputs) -> list:
    """The recordings of the INPUT arguments (files and folders), in a stable order.

    Raises ConfigError for an input that does not exist, a folder without media, two inputs with
    the same name, a name a file cannot carry in a CSV row, or recordings of which only some are in
    partition subfolders.
    """
    found = {}
    for given in inputs:
        path = Path(given).expanduser()
        if not path.exists():
            raise ConfigError("input does not exist (expected an audio or video file, or a folder of them)", path)
        if path.is_file():
            _add(found, Source(path.stem, path))
            continue
        count = len(found)
        listing = _listing(path)
        for item in listing:
            if _is_media(item):
                _add(found, Source(item.stem, item))
        folders = [item for item in listing if item.is_dir() and item.name.lower() in PARTITIONS]
        for item in sorted(folders, key=lambda folder: (PARTITIONS.index(folder.name.lower()), folder.name)):
            for inner in _listing(item):
                if _is_media(inner):
                    _add(found, Source(inner.stem, inner, partition=item.name.lower()))
        if len(found) == count:
            raise ConfigError(
                f"no audio or video file in the folder or its train/devel/test subfolders (extensions: "
                f"{', '.join(ext[1:] for ext in MEDIA_EXTENSIONS)})",
                path,
            )
    sources = list(found.values())
    with_partition = [source for source in sources if source.partition]
    without = [source for source in sources if not source.partition]
    if with_partition and without:
        raise ConfigError(
            f"{with_partition[0].path} is in a {with_partition[0].partition}/ subfolder but {without[0].path} is in "
            f"none: put every recording in train/, devel/ or test/, or none"
        )
    for source in sources:
        label = source.path.with_suffix(".csv")
        if label.is_file():
            source.label_path = label
    return sources


def _add(found: dict, source: Source) -> None:
    bad = [char for char in source.name if ord(char) < 32 or char == "\x7f"]
    if bad or not source.name.strip():
        raise ConfigError(
            "the file name cannot be a recording name (a control character or only spaces); rename the file",
            source.path,
        )
    key = source.path.resolve()
    for other in found.values():
        if other.path.resolve() == key:
            return
    if source.name in found:
        raise ConfigError(
            f"two inputs have the recording name {source.name!r}: {found[source.name].path} and {source.path} "
            f"(a recording is named after its file's stem; rename one)"
        )
    found[source.name] = source


# ---------------------------------------------------------------------------------------------
# Label files


@dataclasses.dataclass
class Labels:
    timestamps: np.ndarray
    arousal: np.ndarray
    valence: np.ndarray


def read_labels(path, hop: float = HOP) -> Labels:
    """A label file beside a media file: `timestamp;arousal;valence` with a header, one row per `hop`
    seconds from 0, values in [-1, 1]. DataError naming file:line:column otherwise."""
    from pipelines.datasets.tables import read_table  # pandas: imported when a label file is read

    path = Path(path)
    table = read_table(path, text_columns=0, header=True, min_numeric_columns=3)
    lower = [name.lower() for name in table.header]
    index = {}
    for name in LABEL_COLUMNS:
        if name not in lower:
            raise DataError(
                f"no {name!r} column in the header (expected timestamp;arousal;valence, one row per {hop:g} s)", path, 1
            )
        index[name] = lower.index(name)
    timestamps = table.values[:, index["timestamp"]]
    expected = np.arange(len(timestamps)) * hop
    off = np.abs(timestamps - expected) > HOP_TOLERANCE * hop
    if off.any():
        i = int(np.argmax(off))
        raise DataError(
            f"timestamp {timestamps[i]:.6g} s, expected {expected[i]:.6g} s (one row every {hop:g} s from 0)",
            path,
            int(table.lines[i]),
            index["timestamp"] + 1,
        )
    values = {}
    for name in ("arousal", "valence"):
        column = table.values[:, index[name]]
        outside = np.abs(column) > 1.0
        if outside.any():
            i = int(np.argmax(outside))
            raise DataError(f"{name} {column[i]:.6g} is outside [-1, 1]", path, int(table.lines[i]), index[name] + 1)
        values[name] = column
    return Labels(timestamps=expected, arousal=values["arousal"], valence=values["valence"])


# ---------------------------------------------------------------------------------------------
# Writing


def quoted_name(name: str) -> str:
    """The name cell of a row: `'name'` (AVEC's quoting), in CSV double quotes when it holds `;` or `"`."""
    cell = f"'{name}'"
    if ";" in cell or '"' in cell:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=";", quotechar='"', quoting=csv.QUOTE_ALL, lineterminator="").writerow([cell])
        return buffer.getvalue()
    return cell


def header_cell(name: str) -> str:
    """A header cell: feature names never hold `;`, but OpenFace or a user's file could."""
    return name.replace(";", "_")


def format_values(values: np.ndarray) -> list:
    """Rows of `%.6g` numbers joined by `;`."""
    return [";".join("%.6g" % value for value in row) for row in np.asarray(values, np.float64).tolist()]


def feature_csv(name: str, timestamps, values: np.ndarray, names) -> str:
    """A feature file in AVEC's format: `name;frameTime;<names>`, then `'name';t;v1;v2;...` per row."""
    prefix = quoted_name(name)
    lines = ["name;frameTime;" + ";".join(header_cell(n) for n in names)]
    for t, row in zip(timestamps, format_values(values)):
        lines.append(f"{prefix};{t:.1f};{row}")
    return "\n".join(lines) + "\n"


def labels_csv(name: str, labels: Labels) -> str:
    """`name;timestamp;arousal;valence` with the quoted name, one row per label row."""
    prefix = quoted_name(name)
    lines = ["name;timestamp;arousal;valence"]
    for t, a, v in zip(labels.timestamps, labels.arousal.tolist(), labels.valence.tolist()):
        lines.append(f"{prefix};{t:.1f};{a:.9g};{v:.9g}")
    return "\n".join(lines) + "\n"


def partitions_csv(pairs) -> str:
    """`name;partition` rows, the names quoted as in the feature files."""
    lines = ["name;partition"] + [f"{quoted_name(name)};{partition}" for name, partition in pairs]
    return "\n".join(lines) + "\n"
