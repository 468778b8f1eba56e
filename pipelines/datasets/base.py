"""The Recording contract between corpus adapters and ExampleGen."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Optional

import numpy as np


@dataclasses.dataclass
class Recording:
    """One recording (AVEC) or utterance (IEMOCAP) as an adapter yields it.

    Attributes:
        name: str. Unique within the corpus, e.g. `Devel_DE_01` or `Ses05F_impro01_F000`.
        partition: str. One of `train`, `devel`, `test` (lower case).
        hop: float. Frame hop in seconds.
        audio: float32 array [N, D_a] (None for a raw recording).
        visual: float32 array [N, D_v] (None for a raw recording).
        valence: float32 array [N] (per frame), a float (per sequence), or None (unlabelled).
        arousal: same form as `valence`.
        timestamps: optional float array [N] in seconds.
        audio_present: optional float32 array [N], 1 where the audio features are real.
            None means all present.
        visual_present: same for the visual features.
        audio_corrupted: optional bool array [N], True on frames whose audio is known to be
            corrupted (the synthetic corpus's ground truth); None when unknown.
        visual_corrupted: same for the visual features.
        metadata: dict of str to str, e.g. culture, speaker, session.
        faces: raw mode: uint8 array [N, H, W, 3], one face crop per frame; None otherwise.
        waveform: raw mode: float32 array [S] in [-1, 1], the mono audio of the recording.
        sample_rate: raw mode: int, samples per second of `waveform`.
    """

    name: str
    partition: str
    hop: float
    audio: np.ndarray
    visual: np.ndarray
    valence: Optional[np.ndarray | float] = None
    arousal: Optional[np.ndarray | float] = None
    timestamps: Optional[np.ndarray] = None
    audio_present: Optional[np.ndarray] = None
    visual_present: Optional[np.ndarray] = None
    audio_corrupted: Optional[np.ndarray] = None
    visual_corrupted: Optional[np.ndarray] = None
    metadata: dict = dataclasses.field(default_factory=dict)
    faces: Optional[np.ndarray] = None
    waveform: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None

    @property
    def raw(self) -> bool:
        return self.faces is not None

    @property
    def num_frames(self) -> int:
        return int((self.faces if self.audio is None else self.audio).shape[0])

    @property
    def labelled(self) -> bool:
        return self.valence is not None and self.arousal is not None

    @property
    def sequence_level(self) -> bool:
        return self.labelled and np.ndim(self.valence) == 0


@dataclasses.dataclass
class Corpus:
    """What an adapter opens: the recordings plus what ExampleGen records about them.

    Attributes:
        dataset: str. Adapter name (`avec`, `iemocap`, `synthetic`).
        root: str. The corpus folder.
        hop: float. Frame hop in seconds.
        audio_feature_names: list of str, one per audio feature column (D_a of them).
        visual_feature_names: list of str, one per visual feature column.
        recordings: callable returning a fresh iterator of `Recording`s (files are read lazily,
            one recording at a time, so a corpus never has to fit in memory).
        fingerprint: str. Hash of the inputs (file paths, sizes, modification times and the
            options), so that ExampleGen can tell when its shards are still up to date.
        report: dict. What the adapter counted or skipped (e.g. utterances without features),
            filled in while `recordings()` is consumed.
        mode: str. "features" (per-frame feature vectors) or "raw" (face crops and waveforms).
    """

    dataset: str
    root: str
    hop: float
    audio_feature_names: list
    visual_feature_names: list
    recordings: Callable[[], Iterator[Recording]]
    fingerprint: str
    report: dict = dataclasses.field(default_factory=dict)
    mode: str = "features"


def content_digest(path) -> str:
    """The sha256 of a corpus file's bytes, for fingerprints: an edit that keeps a file's size and
    modification time still changes it. Raises DataError naming an unreadable file."""
    from pipelines.core.errors import DataError
    from pipelines.core.io_utils import file_digest

    try:
        return file_digest(path)
    except OSError as error:
        raise DataError(f"cannot read the file ({error.strerror})", path) from None
