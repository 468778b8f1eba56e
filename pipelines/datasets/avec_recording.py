"""One recording of an AVEC-layout corpus read from its files: labels and features aligned frame by
frame, short feature files padded (those frames absent), and feature files shared between recordings found."""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.datasets.avec_files import read_features, read_labels
from pipelines.datasets.base import Recording
from pipelines.datasets.checks import check_alignment


@dataclasses.dataclass
class Entry:
    """A recording found in the layout: its name, partition, label file (None: unlabelled) and which
    modalities have their feature files."""

    name: str
    partition: str
    culture: str
    number: str
    label_path: Optional[Path]
    present: dict  # modality -> bool (every folder of the modality has the file)


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

    def check(self, path: Path, entry: Entry, values: np.ndarray) -> None:
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


def read_recording(
    entry: Entry, modalities: dict, hop: float, report: dict, strict=True, seen: Optional[SharedFeatures] = None
) -> Recording:
    """The `Recording` of `entry`: its labels and the features of every folder of `modalities`, checked
    against the label timestamps (or the frame grid) and aligned to the labels' length."""
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
                (folder.path / file_name, *read_features(folder.path / file_name, folder, entry.name, strict, lines))
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
