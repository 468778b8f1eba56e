"""IEMOCAP's per-utterance feature files (`.npy` or `.csv`, one folder per modality): the chosen folders
and their damaged entries, the files read with precise errors, and one utterance's `Recording` with both
modalities resampled onto one frame grid."""

from __future__ import annotations

import dataclasses
import errno
import os
import stat as stat_module
from pathlib import Path

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features
from pipelines.datasets.base import Recording
from pipelines.datasets.checks import chosen_folders
from pipelines.datasets.iemocap_labels import Utterance, label_from_rating
from pipelines.datasets.tables import (
    check_float32,
    clean_name,
    detect_header,
    first_line,
    read_table,
    sniff_separator,
    split_line,
)

SUFFIXES = (".npy", ".csv")  # .npy wins when both exist


@dataclasses.dataclass
class UtteranceFolder:
    """One chosen feature folder: utterance id -> its feature file, the entries left out, and, once
    described, its feature names and dimension."""

    name: str
    path: Path
    files: dict  # utterance id -> (Path, os.stat_result)
    # lenient: damaged entries left out, (utterance id, Path, problem key, message, whether the id has no
    # usable file because of it); `broken`: utterance id -> problem key of the entry that would be used
    damaged: list = dataclasses.field(default_factory=list)
    broken: dict = dataclasses.field(default_factory=dict)
    dim: int = 0
    names: list = dataclasses.field(default_factory=list)
    first_file: Path = None


def resolve_folders(features_root: Path, modality: str, names, strict=True) -> list:
    """The `UtteranceFolder`s chosen for `modality`, their feature files found and damaged entries sorted out.

    Raises:
        ConfigError: no folder chosen, a folder named twice, or one that does not exist.
        DataError: a damaged feature entry (strict).
    """
    existing = ", ".join(sorted(p.name for p in features_root.iterdir() if p.is_dir())) or "none"
    names = chosen_folders(
        modality,
        names,
        f"choose the {modality} feature folder under {features_root} ({modality}_features); folders there: {existing}",
    )
    folders = []
    for name in names:
        path = features_root / name
        if Path(name).name != name or not path.is_dir():
            raise ConfigError(
                f"{modality} feature folder {name!r} does not exist; folders in {features_root}: {existing}", path
            )
        entries = {}  # stem -> {suffix: (Path, os.stat_result or None, (problem key, message) or None)}
        with os.scandir(path) as scan:
            for item in sorted(scan, key=lambda item: item.name):
                stem, suffix = os.path.splitext(item.name)
                if suffix in SUFFIXES and not item.name.startswith("."):
                    info, problem = _entry_problem(item)
                    if problem is not None and strict:
                        raise DataError(
                            f"{problem[1]} (expected a {suffix} feature file); --lenient leaves it out with a warning",
                            item.path,
                        )
                    entries.setdefault(stem, {})[suffix] = (Path(item.path), info, problem)
        folder = UtteranceFolder(name=name, path=path, files={})
        for stem, found in entries.items():
            chosen_path, info, problem = found.get(".npy") or found[".csv"]
            if problem is None:
                folder.files[stem] = (chosen_path, info)
            else:
                folder.broken[stem] = problem[0]
            for entry_path, _, entry_problem in found.values():
                if entry_problem is not None:
                    message = entry_problem[1]
                    if entry_path != chosen_path:
                        message += f"; {chosen_path.name} takes precedence"
                    elif len(found) > 1:
                        message += f"; the {stem}.csv beside it is not used in its place (the .npy takes precedence)"
                    folder.damaged.append((stem, entry_path, entry_problem[0], message, entry_path == chosen_path))
        folders.append(folder)
    return folders


def symlink_problem(path: Path):
    """(problem key, message) for a symlink that cannot be followed, else None."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return "dangling_symlink", f"dangling symlink to {os.readlink(path)}: the target does not exist"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink_loop", (
                f"symlink loop: it points to {os.readlink(path)}, and following the links never reaches a file"
            )
        return "unreadable", f"cannot follow the symlink to {os.readlink(path)}: {error.strerror}"
    return None


def _entry_problem(item: os.DirEntry):
    """(os.stat_result, None) for a regular feature file, else (None, (problem key, message))."""
    try:
        if item.is_symlink():
            problem = symlink_problem(Path(item.path))
            if problem is not None:
                return None, problem
        info = item.stat()
    except OSError as error:
        return None, ("unreadable", f"cannot look at the file: {error.strerror}")
    if stat_module.S_ISREG(info.st_mode):
        return info, None
    kind = "folder" if stat_module.S_ISDIR(info.st_mode) else "special file (a pipe, socket or device)"
    if item.is_symlink():
        return None, ("not_a_file", f"not a regular file but a symlink to the {kind} {os.readlink(item.path)}")
    return None, ("not_a_file", f"not a regular file but a {kind}")


def describe_folder(folder: UtteranceFolder, ids: list) -> None:
    """Feature dimension and names from the first used file of a folder."""
    if not ids:
        raise DataError("no feature file of any utterance in this folder", folder.path)
    path = folder.files[ids[0]][0]
    folder.first_file = path
    if path.suffix == ".npy":
        shape = _load_npy(path, mmap=True).shape
        folder.dim = int(shape[1])
        folder.names = [f"{folder.name}_{i}" for i in range(folder.dim)]
        return
    line = first_line(path)
    cells = split_line(line, sniff_separator(path, line, default=","))
    folder.dim = len(cells)
    if detect_header(cells, 0):
        folder.names = [clean_name(cell) for cell in cells]
    else:
        folder.names = [f"{folder.name}_{i}" for i in range(folder.dim)]


def _load_npy(path: Path, mmap=False) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        if "object" in str(error).lower() or "pickle" in str(error).lower():
            raise DataError(
                "an array of Python objects (expected a numeric .npy array; pickled data is never loaded)", path
            ) from None
        raise DataError(
            f"cannot read the .npy file ({error}) (expected a numeric array saved with numpy.save)", path
        ) from None
    if not isinstance(array, np.ndarray):
        raise DataError("not a .npy array file (expected one numeric array saved with numpy.save)", path)
    if array.ndim != 2:
        raise DataError(
            f"a {array.ndim}-D array of shape {tuple(array.shape)} (expected a 2-D array [frames, features])", path
        )
    if (
        not np.issubdtype(array.dtype, np.number)
        or np.issubdtype(array.dtype, np.complexfloating)
        or array.dtype.names is not None
    ):
        raise DataError(f"dtype {array.dtype} (expected real numbers: a float or integer dtype)", path)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"empty array of shape {tuple(array.shape)} (expected at least one frame and feature)", path)
    return array


def _read_features(path: Path, folder: UtteranceFolder) -> np.ndarray:
    if path.suffix == ".npy":
        values = np.asarray(_load_npy(path), np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{values[row, column]} at frame {row} (0-based), feature {column} (expected finite numbers)", path
            )
        check_float32(values, path)
        first_row = 0
    else:
        table = read_table(path, text_columns=0)
        values = table.values
        first_row = int(table.lines[0])
    if values.shape[1] != folder.dim:
        raise DataError(
            f"{values.shape[1]} feature columns, but {folder.first_file} has {folder.dim}", path, first_row or None
        )
    return values


def resample_frames(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Resamples a feature sequence [M, D] to `num_frames` frames spanning the same time.

    Output frame j covers the fraction [j / n, (j + 1) / n) of the span, input frame i is centred
    at (i + 0.5) / M. Downsampling (M >= n): the mean of the input frames centred in output frame j
    (never empty). Upsampling: linear interpolation between input centres, held at the edges.

    >>> resample_frames(np.array([[0.0], [2.0], [4.0], [6.0]]), 2)[:, 0]
    array([1., 5.])
    """
    values = np.asarray(values, np.float64)
    m, n = values.shape[0], int(num_frames)
    if m == n:
        return values.copy()
    if m > n:
        bins = np.floor((np.arange(m) + 0.5) * n / m).astype(np.int64)
        sums = np.zeros((n, values.shape[1]))
        np.add.at(sums, bins, values)
        return sums / np.bincount(bins, minlength=n)[:, None]
    position = np.clip((np.arange(n) + 0.5) / n * m - 0.5, 0.0, m - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, m - 1)
    weight = (position - low)[:, None]
    return values[low] * (1.0 - weight) + values[high] * weight


def read_utterance(utterance: Utterance, present: dict, modalities: dict, hop: float, partition: str) -> Recording:
    """The `Recording` of one utterance: every folder's features resampled onto `round((end - start) / hop)`
    frames (at least one), a modality not `present` zero-filled with presence 0."""
    n = max(1, int(round((utterance.end - utterance.start) / hop)))
    arrays, presence = {}, {}
    for modality, folders in modalities.items():
        if present[modality]:
            parts = [resample_frames(_read_features(folder.files[utterance.id][0], folder), n) for folder in folders]
            arrays[modality] = np.concatenate(parts, axis=1).astype(np.float32)
            presence[modality] = np.ones(n, np.float32)
        else:
            arrays[modality] = np.zeros((n, sum(folder.dim for folder in folders)), np.float32)
            presence[modality] = np.zeros(n, np.float32)
    return Recording(
        name=utterance.id,
        partition=partition,
        hop=hop,
        audio=arrays[features.AUDIO],
        visual=arrays[features.VISUAL],
        valence=label_from_rating(utterance.valence),
        arousal=label_from_rating(utterance.arousal),
        timestamps=utterance.start + np.arange(n) * hop,
        audio_present=presence[features.AUDIO],
        visual_present=presence[features.VISUAL],
        metadata={
            "session": str(utterance.session),
            "gender": utterance.gender,
            "speaker": f"Ses{utterance.session:02d}{utterance.gender}",
            "dialog": utterance.dialog,
            "category": utterance.category,
        },
    )
