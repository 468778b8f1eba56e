"""The feature folders of an AVEC-layout corpus: which files each holds, its feature names and dimension.

A modality's features may come from several folders, concatenated per frame in the order given; a
folder's names come from the header of its first used file (else `<folder>_<i>`), and a last header
column `present` is the per-frame presence flag, not a feature.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path
from typing import Optional

from pipelines.core.errors import ConfigError, DataError
from pipelines.datasets.checks import chosen_folders
from pipelines.datasets.tables import clean_name, detect_header, first_line, sniff_separator, split_line

LABELS_FOLDER = "labels"
PRESENT_COLUMN = "present"


@dataclasses.dataclass
class FeatureFolder:
    """One chosen feature folder: its `.csv` files and, once described, its feature names and dimension."""

    name: str
    path: Path
    files: dict  # file name -> os.stat_result
    dim: int = 0
    names: list = dataclasses.field(default_factory=list)
    first_file: Optional[Path] = None
    presence: bool = False  # the last column is the `present` flag, not a feature


def list_csv(folder: Path) -> dict:
    """The `.csv` files of `folder` (hidden ones left out): file name -> os.stat_result."""
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


def resolve_folders(root: Path, modality: str, names) -> list:
    """The `FeatureFolder`s chosen for `modality` (their files listed, not yet described)."""
    existing = ", ".join(_existing_folders(root)) or "none"
    names = chosen_folders(
        modality,
        names,
        f"choose the {modality} feature folders ({modality}_features, or "
        f"--{modality}-features a,b); folders in {root}: {existing}",
    )
    folders = []
    for name in names:
        path = root / name
        if name == LABELS_FOLDER or Path(name).name != name or not path.is_dir():
            raise ConfigError(f"{modality} feature folder {name!r} does not exist; folders in {root}: {existing}", path)
        folders.append(FeatureFolder(name=name, path=path, files=list_csv(path)))
    return folders


def describe_folder(folder: FeatureFolder, used: list) -> None:
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


def feature_names(folders: list) -> list:
    """The feature names of a modality's folders, qualified as `<folder>/<name>` when two folders share a name."""
    names = [name for folder in folders for name in folder.names]
    if len(set(names)) != len(names):
        names = [f"{folder.name}/{name}" for folder in folders for name in folder.names]
    return names
