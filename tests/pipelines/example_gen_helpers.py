"""In-memory corpora for the data component tests (tiny recordings, 3-5 features)."""

from __future__ import annotations

import numpy as np

from pipelines.datasets.base import Corpus, Recording

AUDIO_DIM = 3
VISUAL_DIM = 4
HOP = 0.5


def make_recordings(seed=0, lengths=None, sequence_level=False, corruption=True, unlabelled_test=True):
    """Recordings of every partition with random features and labels in [-1, 1]."""
    rng = np.random.default_rng(seed)
    lengths = lengths or {"train": [7, 12, 3, 10], "devel": [5, 8], "test": [9]}
    recordings = []
    for partition, sizes in lengths.items():
        for index, n in enumerate(sizes):
            labelled = not (unlabelled_test and partition == "test")
            if sequence_level:
                valence = float(rng.uniform(-1, 1)) if labelled else None
                arousal = float(rng.uniform(-1, 1)) if labelled else None
            else:
                valence = rng.uniform(-1, 1, n).astype(np.float32) if labelled else None
                arousal = rng.uniform(-1, 1, n).astype(np.float32) if labelled else None
            recordings.append(
                Recording(
                    name=f"{partition}_{index:02d}",
                    partition=partition,
                    hop=HOP,
                    audio=(rng.normal(size=(n, AUDIO_DIM)) * [1.0, 2.0, 5.0] + [0.0, 1.0, -3.0]).astype(np.float32),
                    visual=(rng.normal(size=(n, VISUAL_DIM)) * 3.0 + 1.0).astype(np.float32),
                    valence=valence,
                    arousal=arousal,
                    timestamps=(np.arange(n) * HOP).astype(np.float32),
                    audio_present=(rng.random(n) > 0.2).astype(np.float32),
                    visual_present=np.ones(n, np.float32),
                    audio_corrupted=(rng.random(n) < 0.3) if corruption else None,
                    visual_corrupted=(rng.random(n) < 0.3) if corruption else None,
                    metadata={"culture": "DE", "index": str(index)},
                )
            )
    return recordings


def make_corpus(recordings, fingerprint="fp-1", root="/corpus", dataset="synthetic"):
    """A `Corpus` over a list of recordings; `calls` counts how often it was read."""
    audio_dim = recordings[0].audio.shape[1]
    visual_dim = recordings[0].visual.shape[1]

    def read():
        corpus.report["reads"] = corpus.report.get("reads", 0) + 1
        yield from recordings

    corpus = Corpus(
        dataset=dataset,
        root=root,
        hop=HOP,
        audio_feature_names=[f"a{i}" for i in range(audio_dim)],
        visual_feature_names=[f"v{i}" for i in range(visual_dim)],
        recordings=read,
        fingerprint=fingerprint,
        report={},
    )
    return corpus
