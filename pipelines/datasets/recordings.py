"""Own recordings in raw mode: face crops and waveforms under the recordings' own names.

Layout (what `python -m pipelines.extract` writes for raw mode)::

    <root>/faces/<name>.npz      `faces`: uint8 [N, size, size, 3], one crop per frame (0.1 s); optional
                                 `present`: [N] 0/1, 0 where no face was found (that crop is zeros)
    <root>/audio/<name>.wav      16-bit PCM mono
    <root>/labels/<name>.csv     optional: name;timestamp;arousal;valence (one row per frame)
    <root>/partitions.csv        optional: name;partition (train, devel or test)
    <root>/extract.json          optional: the extraction's settings; its `hop` is the frame hop

A recording is a name with both a face file and an audio file; any name works (spaces, dots,
unicode). Its partition comes from `partitions.csv`, else it is a `test` recording; a train or
devel recording needs a label file. The frame hop is read from the label files' timestamps, else
from `extract.json`, else 0.1 s. Alignment: labels decide the length; a face file longer than the
labels is cut, a shorter one padded with zero crops marked absent (with a warning naming it); the
waveform is cut or zero-padded to the frames' span. Without labels the face file decides.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets.base import Corpus, Recording, content_digest

FACES_FOLDER = "faces"
AUDIO_FOLDER = "audio"
LABELS_FOLDER = "labels"
EXTRACT_MANIFEST = "extract.json"
DEFAULT_HOP = 0.1
READER_VERSION = 1


def read_faces(path: Path):
    """(faces uint8 [N, H, W, 3], presence float32 [N]) of a face file; presence is 1 without `present`."""
    import zipfile
    import zlib

    try:
        with np.load(path, allow_pickle=False) as archive:
            faces = archive["faces"]
            present = archive["present"] if "present" in archive.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"unreadable face file, expected a .npz with a 'faces' array ({error})", path) from None
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
        raise DataError(f"faces must be uint8 [frames, height, width, 3], got {faces.dtype} {faces.shape}", path)
    if present is None:
        return faces, np.ones(len(faces), np.float32)
    present = np.asarray(present)
    if present.shape != (len(faces),) or not np.isin(present, (0, 1)).all():
        raise DataError(
            f"'present' must hold one 0 or 1 per face frame ({len(faces)}), got {present.dtype} {present.shape}", path
        )
    return faces, present.astype(np.float32)


def _hop_of(root: Path, label_paths: list) -> float:
    from pipelines.datasets.tables import read_table

    for path in label_paths:
        table = read_table(path, text_columns=1, header=True, allow_empty=True)
        stamps = table.values[:, 0]
        if len(stamps) >= 2:
            return round(float(np.median(np.diff(stamps))), 9)
    manifest = root / EXTRACT_MANIFEST
    if manifest.is_file():
        try:
            hop = json.loads(manifest.read_text()).get("hop", DEFAULT_HOP)
        except ValueError as error:
            raise DataError(f"not valid JSON ({error})", manifest) from None
        if not isinstance(hop, (int, float)) or not hop > 0:
            raise DataError(f"hop must be a positive number of seconds, got {hop!r}", manifest)
        return float(hop)
    return DEFAULT_HOP


def open_recordings(
    data_dir,
    *,
    labels_optional=False,
    select: Optional[Callable[[str, str], bool]] = None,
    strict=True,
) -> Corpus:
    """Opens a raw-mode folder of own recordings (layout in the module docstring).

    Args:
        data_dir: str or Path.
        labels_optional: bool. A train or devel recording without a label file is read unlabelled
            (prediction) instead of being an error. Defaults to False.
        select: optional function (name, partition) -> bool; `recordings()` neither reads nor yields
            the recordings it rejects (their number is `report["selected"]`).
        strict: bool. As for the AVEC reader's label files. Defaults to True.

    Returns:
        `Corpus` with `mode="raw"`: recordings hold `faces`, `waveform`, `sample_rate` and
        `visual_present`.

    Raises:
        DataError: missing folders, a face file without its audio file (or the other way round),
            unreadable files, a training recording without labels.
    """
    from pipelines.datasets.avec_files import PARTITIONS_FILE, read_labels, read_partitions
    from pipelines.datasets.synthetic_raw import read_wav

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("corpus folder does not exist", root)
    for folder in (FACES_FOLDER, AUDIO_FOLDER):
        if not (root / folder).is_dir():
            raise DataError(
                f"no {folder}/ folder: a raw-mode corpus holds faces/<name>.npz and audio/<name>.wav "
                f"(python -m pipelines.extract writes them)",
                root / folder,
            )
    faces = {path.stem: path for path in sorted((root / FACES_FOLDER).glob("*.npz")) if not path.name.startswith(".")}
    audio = {path.stem: path for path in sorted((root / AUDIO_FOLDER).glob("*.wav")) if not path.name.startswith(".")}
    for name in sorted(set(faces) ^ set(audio)):
        have, lack = (faces[name], AUDIO_FOLDER) if name in faces else (audio[name], FACES_FOLDER)
        raise DataError(f"no {lack}/ file for this recording (a recording needs both)", have)
    if not faces:
        raise DataError("no recordings: expected faces/<name>.npz with audio/<name>.wav", root)
    partitions = read_partitions(root / PARTITIONS_FILE)
    entries = []
    for name in faces:
        partition = partitions.get(name, features.TEST)
        label = root / LABELS_FOLDER / f"{name}.csv"
        label = label if label.is_file() else None
        if label is None and partition != features.TEST and not labels_optional:
            raise DataError(
                f"no label file for the {partition} recording {name!r} (listed in {PARTITIONS_FILE})",
                root / LABELS_FOLDER / f"{name}.csv",
            )
        entries.append((features.PARTITIONS.index(partition), name, partition, label))
    entries.sort()
    hop = _hop_of(root, [label for *_, label in entries if label is not None])
    files = []
    for _, name, _, label in entries:
        files.append([f"{FACES_FOLDER}/{name}.npz", content_digest(faces[name])])
        files.append([f"{AUDIO_FOLDER}/{name}.wav", content_digest(audio[name])])
        if label is not None:
            files.append([f"{LABELS_FOLDER}/{name}.csv", content_digest(label)])
    if (root / PARTITIONS_FILE).is_file():
        files.append([PARTITIONS_FILE, content_digest(root / PARTITIONS_FILE)])
    key = {"dataset": "recordings", "mode": "raw", "reader_version": READER_VERSION, "hop": hop, "files": files}
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    counts = {partition: 0 for partition in features.PARTITIONS}
    for _, _, partition, _ in entries:
        counts[partition] += 1
    report = {"recordings": counts, "padded_files": [], "unlabelled": []}
    if select is not None:
        entries = [entry for entry in entries if select(entry[1], entry[2])]
        report["selected"] = len(entries)

    def recordings():
        report["padded_files"], report["unlabelled"] = [], []
        for _, name, partition, label in entries:
            crops, present = read_faces(faces[name])
            waveform, rate = read_wav(audio[name])
            timestamps = arousal = valence = None
            if label is not None:
                timestamps, arousal, valence = read_labels(label, hop, name, strict)
            if valence is None:
                report["unlabelled"].append(name)
            n = len(crops) if timestamps is None else len(timestamps)
            if len(crops) < n:
                warnings.warn(
                    f"{faces[name]}: {len(crops)} face frames for {n} label rows; the {n - len(crops)} missing "
                    f"frames are zero crops marked absent",
                    stacklevel=2,
                )
                report["padded_files"].append(str(faces[name]))
                pad = n - len(crops)
                crops = np.concatenate([crops, np.zeros((pad, *crops.shape[1:]), np.uint8)])
                present = np.concatenate([present, np.zeros(pad, np.float32)])
            samples = int(round(n * hop * rate))
            waveform = np.pad(waveform[:samples], (0, max(0, samples - len(waveform))))
            if timestamps is None:
                timestamps = np.round(np.arange(n) * hop, 9)
            yield Recording(
                name=name,
                partition=partition,
                hop=hop,
                audio=None,
                visual=None,
                valence=valence,
                arousal=arousal,
                timestamps=np.asarray(timestamps, np.float64),
                visual_present=present[:n],
                faces=crops[:n],
                waveform=waveform.astype(np.float32),
                sample_rate=rate,
            )

    return Corpus(
        dataset="recordings",
        root=str(root),
        hop=hop,
        audio_feature_names=[],
        visual_feature_names=[],
        recordings=recordings,
        fingerprint=fingerprint,
        report=report,
        mode="raw",
    )
