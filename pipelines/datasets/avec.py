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

This module finds the recordings and opens the corpus; `avec_folders` lists and describes the feature
folders, `avec_files` reads the label and feature files, `avec_recording` assembles one recording, and
`checks` holds the field checks the adapters share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Optional

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets.avec_files import PARTITIONS_FILE, corpus_hop, read_partitions
from pipelines.datasets.avec_folders import LABELS_FOLDER, describe_folder, feature_names, list_csv, resolve_folders
from pipelines.datasets.avec_recording import Entry, SharedFeatures, read_recording
from pipelines.datasets.base import Corpus, Recording, content_digest

PARTITION_NAMES = {"Train": features.TRAIN, "Devel": features.DEVEL, "Test": features.TEST}
FILE_PATTERN = re.compile(r"^(Train|Devel|Test)_([A-Za-z]+)_(\d+)\.csv$")
# Bumped whenever the way files are read changes, so fingerprints (and ExampleGen shards) change too.
READER_VERSION = 2


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
        features.AUDIO: resolve_folders(root, features.AUDIO, audio_features),
        features.VISUAL: resolve_folders(root, features.VISUAL, visual_features),
    }
    report = {
        "ignored_files": [],
        "missing_audio": [],
        "missing_visual": [],
        "skipped_without_features": [],
        "unlabelled": [],
        "padded_files": [],
    }
    label_files = list_csv(labels_dir) if labels_dir.is_dir() else {}
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
            describe_folder(folder, [name for name in order if name in folder.files])
    names = {modality: feature_names(folders) for modality, folders in modalities.items()}
    hop = corpus_hop(entries, order, modalities)

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
            recording = read_recording(entry, modalities, hop, report, strict=strict, seen=shared)
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


def _entry(file_name: str, label_path, partitions: dict, labels_optional: bool) -> Optional[Entry]:
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
    return Entry(name=stem, partition=partition, culture=culture, number=number, label_path=label_path, present={})


def _ignore(path: Path, report: dict) -> None:
    if str(path) in report["ignored_files"]:
        return
    report["ignored_files"].append(str(path))
    warnings.warn(
        f"{path}: ignored, recordings are named <Partition>_<Culture>_<NN>.csv with Partition Train, "
        f"Devel or Test, or listed with their partition in {PARTITIONS_FILE}",
        stacklevel=4,
    )


def _sort_key(entry: Entry):
    return (features.PARTITIONS.index(entry.partition), entry.culture, int(entry.number or 0), entry.name)


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
