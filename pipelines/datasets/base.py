"""The Recording contract between corpus adapters and ExampleGen (DESIGN.md section 4)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Recording:
    """One recording (AVEC) or utterance (IEMOCAP) as an adapter yields it.

    Attributes:
        name: str. Unique within the corpus, e.g. `Devel_DE_01` or `Ses05F_impro01_F000`.
        partition: str. One of `train`, `devel`, `test` (lower case).
        hop: float. Frame hop in seconds.
        audio: float32 array [N, D_a].
        visual: float32 array [N, D_v].
        valence: float32 array [N] (per frame), a float (per sequence), or None (unlabelled).
        arousal: same form as `valence`.
        timestamps: optional float array [N] in seconds.
        audio_present: optional float32 array [N], 1 where the audio features are real.
            None means all present.
        visual_present: same for the visual features.
        metadata: dict of str to str, e.g. culture, speaker, session.
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
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.audio.shape[0])

    @property
    def labelled(self) -> bool:
        return self.valence is not None and self.arousal is not None

    @property
    def sequence_level(self) -> bool:
        return self.labelled and np.ndim(self.valence) == 0
