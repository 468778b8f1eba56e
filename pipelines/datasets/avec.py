"""AVEC 2019 CES (SEWA) adapter: label files plus per-frame feature folders -> `Recording`s.

Layout::

    <root>/labels/<Partition>_<Culture>_<NN>.csv     name;timestamp;arousal;valence;liking
    <root>/<feature folder>/<Partition>_<Culture>_<NN>.csv

* Partitions `Train`, `Devel`, `Test` become `train`, `devel`, `test`; the culture (`DE`, `HU`,
  `CN`, ...) goes into the recording's metadata.
* Label files: header required, `;`-separated, names quoted (`'Devel_DE_01'`), one row per hop;
  the hop is read from the timestamps. Labels must lie in [-1, 1]. A label file without
  `arousal`/`valence` columns, or with those columns left empty, is an unlabelled recording.
  Test recordings need no label file: they are also discovered from the feature folders.
  `labels_optional=True` (for prediction) does the same for every partition and accepts a folder
  without `labels/`: a feature-only folder, whose recordings are all unlabelled.
* Feature files: name and timestamp, then the features; separator `;`, `,` or tab (sniffed from the
  first line); header optional (a first row whose timestamp cell, or all of whose feature cells, are
  not numbers is a header). Feature names come from the header, else `<folder>_<i>` (0-based).
  Several folders per modality are concatenated per frame in the order given (names are
  qualified as `<folder>/<name>` when two folders share a name).
* Alignment on the labels: longer feature files are cut to the label length (AVEC pads its files
  to 1768 rows); a shorter one is padded by repeating its last row, those frames get presence 0,
  and a warning names the file. Without labels, a recording has the length of its shortest
  feature file.
* `allow_missing_modality=True`: a recording without a modality's feature file gets zeros and a
  presence of 0 for that modality (a recording with neither modality is skipped and reported).

Recordings named as their user named them. `<Partition>_<Culture>_<NN>` is AVEC's convention; any
other file stem (spaces, dots, unicode) is a recording too: its partition comes from
`<root>/partitions.csv` (header `name;partition`, partition `train`, `devel` or `test`), and with
`labels_optional=True` (prediction) an unlisted one is a `test` recording. Without either, a file of
another name is ignored with a warning naming it.

Presence per frame: a feature file whose last header column is `present` (0 or 1, as
`pipelines.extract` writes for frames without a face) marks the frames it flags 0 absent; that
column is not a feature.

Files are read lazily, one recording at a time, when `Corpus.recordings()` is iterated.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features
from pipelines.datasets.base import Corpus, Recording, content_digest
from pipelines.datasets.tables import clean_name, detect_header, first_line, read_table, sniff_separator, split_line

LABELS_FOLDER = "labels"
PARTITIONS_FILE = "partitions.csv"
PRESENT_COLUMN = "present"
PARTITION_NAMES = {"Train": features.TRAIN, "Devel": features.DEVEL, "Test": features.TEST}
FILE_PATTERN = re.compile(r"^(Train|Devel|Test)_([A-Za-z]+)_(\d+)\.csv$")
# Relative tolerance on the step between label timestamps.
HOP_TOLERANCE = 0.01
# A feature row's timestamp may differ from the label row it is paired with by this fraction of the hop
# (strict); lenient reading accepts anything under half a hop, with a warning.
ALIGN_TOLERANCE = 0.05
LENIENT_ALIGN = 0.5
# Bumped whenever the way files are read changes, so fingerprints (and ExampleGen shards) change too.
READER_VERSION = 2


@dataclasses.dataclass
class _Folder:
    name: str
    path: Path
    files: dict  # file name -> os.stat_result
    dim: int = 0
    names: list = dataclasses.field(default_factory=list)
    first_file: Optional[Path] = None
    presence: bool = False  # the last column is the `present` flag, not a feature


@dataclasses.dataclass
class _Entry:
    name: str
    partition: str
    culture: str
    number: str
    label_path: Optional[Path]
    present: dict  # modality -> bool (every folder of the modality has the file)


def open_avec(
    data_dir,
    *,
    audio_features=None,
    visual_features=None,
    allow_missing_modality=False,
    labels_optional=False,
    strict=True,
) -> Corpus:
    """Opens an AVEC 2019 CES corpus folder.

    Args:
        data_dir: str or Path. The folder holding `labels/` and the feature folders.
        audio_features: list of str (or one str). Audio feature folders, concatenated per frame.
            Required: the error lists the folders that exist.
        visual_features: list of str (or one str). Visual feature folders.
        allow_missing_modality: bool. Zero-fill (presence 0) a modality whose feature file is
            missing instead of failing. Defaults to False.
        labels_optional: bool. Read recordings without a label file in every partition, and a
            folder without `labels/`, as unlabelled (for prediction). Defaults to False.
        strict: bool. False accepts, with a warning naming the file, feature timestamps that drift
            from the labels' by less than half a hop and a name column that differs from the file's
            recording only in its quoting. Defaults to True.

    Returns:
        `Corpus` whose `recordings()` reads one recording at a time.

    Raises:
        DataError: missing folders or files, or bad file contents (file, line and column).
        ConfigError: no feature folders chosen, or a chosen folder that does not exist.

    >>> corpus = open_avec("AVEC2019_CES", audio_features=["egemaps"], visual_features=["au"])  # doctest: +SKIP
    >>> next(corpus.recordings()).audio.shape  # doctest: +SKIP
    (1748, 88)
    """
    return open_layout(
        data_dir,
        audio_features=audio_features,
        visual_features=visual_features,
        allow_missing_modality=allow_missing_modality,
        dataset="avec",
        labels_optional=labels_optional,
        strict=strict,
    )


def open_layout(
    data_dir,
    *,
    audio_features,
    visual_features,
    allow_missing_modality,
    dataset,
    extra_files=(),
    decorate: Optional[Callable[[Recording], Recording]] = None,
    labels_optional=False,
    select: Optional[Callable[[str, str], bool]] = None,
    strict=True,
) -> Corpus:
    """The AVEC-layout reader shared by `avec` and `synthetic`.

    Args:
        extra_files: paths whose size and modification time also enter the fingerprint.
        decorate: optional function applied to every recording before it is yielded.
        labels_optional: bool. See `open_avec`.
        select: optional function (name, partition) -> bool; `recordings()` neither reads nor
            yields the recordings it rejects (their number is `report["selected"]`).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("corpus folder does not exist", root)
    labels_dir = root / LABELS_FOLDER
    if not labels_dir.is_dir() and not labels_optional:
        raise DataError(
            f"no labels folder: expected label files labels/<Partition>_<Culture>_<NN>.csv under {root}", labels_dir
        )
    modalities = {
        features.AUDIO: _resolve_folders(root, features.AUDIO, audio_features),
        features.VISUAL: _resolve_folders(root, features.VISUAL, visual_features),
    }
    report = {
        "ignored_files": [],
        "missing_audio": [],
        "missing_visual": [],
        "skipped_without_features": [],
        "unlabelled": [],
        "padded_files": [],
    }
    label_files = _list_csv(labels_dir) if labels_dir.is_dir() else {}
    partitions = read_partitions(root / PARTITIONS_FILE)
    entries = {}
    for file_name in sorted(label_files):
        entry = _entry(file_name, labels_dir / file_name, partitions, labels_optional)
        if entry is None:
            _ignore(labels_dir / file_name, report)
            continue
        entries[file_name] = entry
    # Test labels are not public: test recordings are also found in the feature folders.
    for folders in modalities.values():
        for folder in folders:
            for file_name in sorted(folder.files):
                if file_name in entries:
                    continue
                entry = _entry(file_name, None, partitions, labels_optional)
                if entry is None:
                    _ignore(folder.path / file_name, report)
                elif labels_optional or entry.partition == features.TEST:
                    entries[file_name] = entry
                elif file_name not in label_files:
                    _missing_labels(labels_dir / file_name, folder.path / file_name, strict, report)
    if not entries:
        raise DataError(
            "no label files named <Partition>_<Culture>_<NN>.csv (Partition: Train, Devel, Test) or listed "
            f"in {PARTITIONS_FILE}",
            labels_dir,
        )
    for file_name, entry in list(entries.items()):
        for modality, folders in modalities.items():
            missing = [folder for folder in folders if file_name not in folder.files]
            if missing and not allow_missing_modality:
                source = f"label file {entry.label_path}" if entry.label_path else "other feature folders"
                raise DataError(
                    f"no {modality} feature file for recording {entry.name} (it is in the {source}); "
                    f"pass allow_missing_modality=True (--allow-missing-modality) to zero-fill it",
                    missing[0].path / file_name,
                )
            entry.present[modality] = not missing
            if missing:
                report[f"missing_{modality}"].append(entry.name)
        if not any(entry.present.values()):
            report["skipped_without_features"].append(entry.name)
            warnings.warn(f"recording {entry.name} has no feature file in any chosen folder: skipped", stacklevel=3)
            del entries[file_name]
    if not entries:
        raise DataError("no recording has feature files in the chosen folders", root)
    order = sorted(entries, key=lambda file_name: _sort_key(entries[file_name]))
    for folders in modalities.values():
        for folder in folders:
            _describe_folder(folder, [name for name in order if name in folder.files])
    names = {modality: _feature_names(folders) for modality, folders in modalities.items()}
    hop = _corpus_hop(entries, order, modalities)

    counts = {partition: 0 for partition in features.PARTITIONS}
    for entry in entries.values():
        counts[entry.partition] += 1
    report["recordings"] = counts

    fingerprint = _fingerprint(
        dataset,
        root,
        entries,
        modalities,
        label_files,
        extra_files,
        {
            "audio_features": [f.name for f in modalities[features.AUDIO]],
            "visual_features": [f.name for f in modalities[features.VISUAL]],
            "allow_missing_modality": bool(allow_missing_modality),
        },
    )
    ordered = [entries[name] for name in order]
    if select is not None:
        ordered = [entry for entry in ordered if select(entry.name, entry.partition)]
        report["selected"] = len(ordered)

    def recordings():
        report["unlabelled"] = []
        report["padded_files"] = []
        report["notes"] = []
        shared = SharedFeatures(report)
        for entry in ordered:
            recording = _read_recording(entry, modalities, hop, report, strict=strict, seen=shared)
            if decorate is not None:
                recording = decorate(recording)
            yield recording
        note = shared.note()
        if note:
            report["notes"].append(note)

    return Corpus(
        dataset=dataset,
        root=str(root),
        hop=hop,
        audio_feature_names=names[features.AUDIO],
        visual_feature_names=names[features.VISUAL],
        recordings=recordings,
        fingerprint=fingerprint,
        report=report,
    )


def _missing_labels(label_path: Path, feature_path: Path, strict: bool, report: dict) -> None:
    """A training or development recording with features but no label file (lenient: skipped with a warning)."""
    if strict:
        raise DataError(
            f"no label file, but {feature_path} holds features of this recording (expected a label "
            f"file for every Train and Devel recording; --lenient skips the recording)",
            label_path,
        )
    if str(label_path) not in report.setdefault("skipped_without_labels", []):
        report["skipped_without_labels"].append(str(label_path))
        warnings.warn(
            f"{label_path}: no label file for the features in {feature_path}; recording skipped (lenient)", stacklevel=3
        )


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


def _entry(file_name: str, label_path, partitions: dict, labels_optional: bool) -> Optional[_Entry]:
    """The recording a file belongs to: AVEC's `<Partition>_<Culture>_<NN>` names carry their partition;
    any other name takes it from partitions.csv, or is a test recording when labels are optional
    (prediction). None: a file of no recording (ignored with a warning)."""
    stem = file_name[: -len(".csv")]
    match = FILE_PATTERN.match(file_name)
    if stem in partitions:
        partition = partitions[stem]
    elif match:
        partition = PARTITION_NAMES[match.group(1)]
    elif labels_optional:
        partition = features.TEST
    else:
        return None
    culture, number = (match.group(2), match.group(3)) if match else ("", "")
    return _Entry(name=stem, partition=partition, culture=culture, number=number, label_path=label_path, present={})


def _ignore(path: Path, report: dict) -> None:
    if str(path) in report["ignored_files"]:
        return
    report["ignored_files"].append(str(path))
    warnings.warn(
        f"{path}: ignored, recordings are named <Partition>_<Culture>_<NN>.csv with Partition Train, "
        f"Devel or Test, or listed with their partition in {PARTITIONS_FILE}",
        stacklevel=4,
    )


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


def _sort_key(entry: _Entry):
    return (features.PARTITIONS.index(entry.partition), entry.culture, int(entry.number or 0), entry.name)


def _list_csv(folder: Path) -> dict:
    listing = {}
    try:
        with os.scandir(folder) as scan:
            for item in scan:
                if not item.name.endswith(".csv") or item.name.startswith("."):
                    continue
                if item.is_symlink():
                    _check_link(Path(item.path))
                if item.is_file():
                    listing[item.name] = item.stat()
    except OSError as error:
        raise DataError(f"cannot list the folder ({error.strerror}) (expected a readable folder)", folder) from None
    return listing


def _check_link(path: Path) -> None:
    """A symbolic link among the corpus files must lead to a file: a dangling link or a loop is an
    error naming the link (never a recording dropped without a word)."""
    try:
        path.stat()
    except OSError as error:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        what = "a symbolic link loop" if error.errno == errno.ELOOP else "a dangling symbolic link"
        raise DataError(
            f"{what} (it points to {target}: {error.strerror}); expected a feature or label file", path
        ) from None


def _existing_folders(root: Path) -> list:
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and p.name != LABELS_FOLDER and not p.name.startswith(".")
    )


def _resolve_folders(root: Path, modality: str, names) -> list:
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    names = [str(name) for name in (names or [])]
    existing = ", ".join(_existing_folders(root)) or "none"
    if not names:
        raise ConfigError(
            f"choose the {modality} feature folders ({modality}_features, or "
            f"--{modality}-features a,b); folders in {root}: {existing}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{modality} feature folders repeat a folder: {', '.join(names)}")
    folders = []
    for name in names:
        path = root / name
        if name == LABELS_FOLDER or Path(name).name != name or not path.is_dir():
            raise ConfigError(f"{modality} feature folder {name!r} does not exist; folders in {root}: {existing}", path)
        folders.append(_Folder(name=name, path=path, files=_list_csv(path)))
    return folders


def _describe_folder(folder: _Folder, used: list) -> None:
    """Feature dimension and names of a folder, from the first line of its first used file (`used`
    in corpus order)."""
    if not used:
        raise DataError("no feature file of any recording in this folder", folder.path)
    path = folder.path / used[0]
    line = first_line(path)
    cells = split_line(line, sniff_separator(path, line))
    if len(cells) < 3:
        raise DataError(
            f"a feature file needs a name, a timestamp and at least one feature column; found {len(cells)} columns",
            path,
            1,
        )
    folder.dim = len(cells) - 2
    folder.first_file = path
    if detect_header(cells, 1):
        folder.names = [clean_name(cell) for cell in cells[2:]]
        if folder.names[-1] == PRESENT_COLUMN:
            if folder.dim < 2:
                raise DataError(f"a feature file needs at least one feature column besides {PRESENT_COLUMN!r}", path, 1)
            folder.presence = True
            folder.names = folder.names[:-1]
            folder.dim -= 1
    else:
        folder.names = [f"{folder.name}_{i}" for i in range(folder.dim)]


def _feature_names(folders: list) -> list:
    names = [name for folder in folders for name in folder.names]
    if len(set(names)) != len(names):
        names = [f"{folder.name}/{name}" for folder in folders for name in folder.names]
    return names


def _corpus_hop(entries: dict, order: list, modalities: dict) -> float:
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


def _require_values(table, column: int, name: str) -> None:
    missing = np.isnan(table.values[:, column])
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(f"missing {name} value", table.path, int(table.lines[i]), table.column_number(column))


def _read_features(path: Path, folder: _Folder, name=None, strict=True, lines=None):
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


class SharedFeatures:
    """Finds feature files with the same values as another file, as the corpus is read.

    AVEC 2019 CES is recorded in dyadic conversations, and both partners of a conversation share
    the conversation's audio, so their audio feature files hold the same values: within a
    partition that is accepted and listed in `report["recordings_sharing_features"]` (one entry
    per group: partition, recordings, folders) with one summary line in `report["notes"]`.
    The same values in two partitions can leak test data into training: a warning naming both
    files, listed in `report["shared_across_partitions"]`. The same values in two different
    feature folders (a folder copied into another) are an error naming both files. A file whose
    values are all one number (e.g. all zeros) is not taken for a copy of another folder's file.
    """

    def __init__(self, report: dict):
        self.report = report
        self.first = {}  # digest -> (path, folder, recording, partition)
        self.groups = {}  # (partition, folder, digest) -> [recordings]
        report["recordings_sharing_features"] = []
        report["shared_across_partitions"] = []

    def check(self, path: Path, entry: _Entry, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values)
        digest = hashlib.sha1(repr(values.shape).encode() + values.tobytes()).hexdigest()
        folder = path.parent.name
        first = self.first.setdefault(digest, (path, folder, entry.name, entry.partition))
        first_path, first_folder, first_name, first_partition = first
        if first_path == path:
            return
        if first_folder != folder:
            if values.size and np.all(values == values.flat[0]):
                return
            raise DataError(
                f"the same feature values as {first_path}, a file of another feature folder (expected "
                f"each folder to hold its own feature set: was one folder copied into another?)",
                path,
            )
        if first_partition != entry.partition:
            self.report["shared_across_partitions"].append([str(first_path), str(path)])
            warnings.warn(
                f"{path}: the same feature values as {first_path} of the {first_partition} partition; "
                f"a recording in two partitions leaks its data from one into the other (accepted)",
                stacklevel=4,
            )
            return
        group = self.groups.setdefault((first_partition, folder, digest), [first_name])
        group.append(entry.name)
        merged = {}
        for (partition, name, _), recordings in self.groups.items():
            merged.setdefault((partition, tuple(recordings)), []).append(name)
        self.report["recordings_sharing_features"] = [
            {"partition": partition, "recordings": list(recordings), "folders": folders}
            for (partition, recordings), folders in merged.items()
        ]

    def note(self) -> str:
        """One line naming the groups of recordings that share features, or "" when none do."""
        groups = self.report["recordings_sharing_features"]
        if not groups:
            return ""
        count = len({name for group in groups for name in group["recordings"]})
        shown = ", ".join("=".join(group["recordings"]) + f" ({', '.join(group['folders'])})" for group in groups[:6])
        more = f" and {len(groups) - 6} more" if len(groups) > 6 else ""
        return (
            f"{count} recordings share feature values with another recording of their partition, accepted "
            f"(a dyadic conversation's partners share its audio): {shown}{more}; all under "
            f"recordings_sharing_features in the manifest's corpus_report"
        )


def _read_recording(
    entry: _Entry, modalities: dict, hop: float, report: dict, strict=True, seen: Optional[SharedFeatures] = None
) -> Recording:
    file_name = f"{entry.name}.csv"
    timestamps = valence = arousal = None
    if entry.label_path is not None:
        timestamps, arousal, valence = read_labels(entry.label_path, hop, entry.name, strict)
    if valence is None:
        report["unlabelled"].append(entry.name)
    raw, lines = {}, {}
    for modality, folders in modalities.items():
        if entry.present[modality]:
            raw[modality] = [
                (folder.path / file_name, *_read_features(folder.path / file_name, folder, entry.name, strict, lines))
                for folder in folders
            ]
    reference, against = timestamps, "the label row it is paired with"
    if timestamps is None:
        path, stamps, _, _ = min((item for items in raw.values() for item in items), key=lambda item: len(item[1]))
        timestamps = stamps
        # No labels: every file against the grid of the corpus hop through the nearest grid point.
        longest = max(len(item[1]) for items in raw.values() for item in items)
        reference = np.round(stamps[0] / hop) * hop + np.arange(longest) * hop
        against = f"the {hop:.6g} s frame grid puts that row at"
    for path, stamps, values, _ in (item for items in raw.values() for item in items):
        check_alignment(path, stamps, lines[path], reference, hop, strict, against)
        if seen is not None:
            seen.check(path, entry, values)
    n = len(timestamps)
    arrays, presence = {}, {}
    for modality, folders in modalities.items():
        present = np.ones(n, np.float32)
        if modality not in raw:
            arrays[modality] = np.zeros((n, sum(folder.dim for folder in folders)), np.float32)
            presence[modality] = np.zeros(n, np.float32)
            continue
        parts = []
        for path, _, values, flags in raw[modality]:
            rows = values.shape[0]
            if flags is not None:
                present[: min(rows, n)] *= flags[:n]
            if rows < n:
                warnings.warn(
                    f"{path}: {rows} feature rows for {n} label rows; the last row is repeated "
                    f"and the {n - rows} padded frames are marked absent",
                    stacklevel=3,
                )
                report["padded_files"].append(str(path))
                values = np.concatenate([values, np.repeat(values[-1:], n - rows, axis=0)])
                present[rows:] = 0.0
            parts.append(values[:n])
        arrays[modality] = np.concatenate(parts, axis=1).astype(np.float32)
        presence[modality] = present
    return Recording(
        name=entry.name,
        partition=entry.partition,
        hop=hop,
        audio=arrays[features.AUDIO],
        visual=arrays[features.VISUAL],
        valence=valence,
        arousal=arousal,
        timestamps=np.asarray(timestamps, np.float64),
        audio_present=presence[features.AUDIO],
        visual_present=presence[features.VISUAL],
        metadata={"culture": entry.culture, "number": entry.number} if entry.culture else {},
    )


def _fingerprint(dataset, root, entries, modalities, label_files, extra_files, options) -> str:
    files = []
    for file_name, entry in sorted(entries.items()):
        if entry.label_path is not None:
            files.append([f"{LABELS_FOLDER}/{file_name}", content_digest(entry.label_path)])
        for folders in modalities.values():
            for folder in folders:
                if file_name in folder.files:
                    files.append([f"{folder.name}/{file_name}", content_digest(folder.path / file_name)])
    for path in extra_files:
        files.append([os.path.relpath(path, root), content_digest(Path(path))])
    # Contents, not sizes and times: an edit that keeps both still changes the fingerprint. Paths
    # relative to the root: a corpus copied elsewhere keeps its fingerprint.
    key = {"dataset": dataset, "reader_version": READER_VERSION, "options": options, "files": files}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
