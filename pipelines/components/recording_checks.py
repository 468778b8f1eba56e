"""ExampleGen's checks of each recording against the corpus and the recordings before it.

Partition, unique name, hop, feature dimensions and frame counts, raw inputs (face crops and
waveforms), labels and per-frame fields, one labelling kind per partition, and no recording twice
(the same features under two names). A failed check is a `DataError` naming the recording.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from pipelines.core.errors import DataError
from pipelines.data import features
from pipelines.data.records import AUDIO_CORRUPTED, RAW, TIMESTAMPS, VISUAL_CORRUPTED


class RecordingChecker:
    """Checks each recording against the corpus and the recordings before it."""

    def __init__(self, corpus, mel_bins=None):
        self.corpus = corpus
        self.raw = corpus.mode == RAW
        self.dims = {
            features.AUDIO: len(corpus.audio_feature_names) or None,
            features.VISUAL: len(corpus.visual_feature_names) or None,
        }
        if self.raw:
            self.dims = {features.AUDIO: mel_bins, features.VISUAL: 3}
        self.face_shape = None
        self.sample_rate = None
        self.first = {}
        self.names = set()
        self.kind = {}
        self.contents = {}

    def fail(self, recording, message):
        raise DataError(f"recording {recording.name!r} ({recording.partition}): {message}", self.corpus.root)

    def _check_raw(self, rec) -> int:
        faces, waveform = np.asarray(rec.faces), rec.waveform
        if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
            self.fail(rec, f"faces must be uint8 [frames, height, width, 3], got {faces.dtype} {faces.shape}")
        if self.face_shape is None:
            self.face_shape = tuple(faces.shape[1:])
        elif tuple(faces.shape[1:]) != self.face_shape:
            self.fail(rec, f"face crops of {faces.shape[1:]}, but earlier recordings have {self.face_shape}")
        if waveform is None or np.ndim(waveform) != 1 or not np.all(np.isfinite(waveform)):
            self.fail(rec, "needs a finite mono waveform [samples]")
        if not isinstance(rec.sample_rate, (int, np.integer)) or rec.sample_rate < 1:
            self.fail(rec, f"sample_rate must be a positive integer, got {rec.sample_rate!r}")
        if self.sample_rate is None:
            self.sample_rate = int(rec.sample_rate)
        elif rec.sample_rate != self.sample_rate:
            self.fail(rec, f"sample rate {rec.sample_rate} Hz, but earlier recordings have {self.sample_rate} Hz")
        return faces.shape[0]

    def _check_contents(self, rec):
        """No two recordings with the same features (a copied recording). Non-finite values are left
        to StatisticsGen, which reports them as a blocking anomaly."""
        digest = hashlib.sha1()
        for modality in features.MODALITIES:
            values = np.asarray(getattr(rec, modality), np.float32)
            digest.update(np.ascontiguousarray(values).tobytes())
        key = digest.hexdigest()
        if key in self.contents:
            name, partition = self.contents[key]
            self.fail(
                rec,
                f"has the same audio and visual features as recording {name!r} ({partition}) "
                f"(expected every recording once in the corpus)",
            )
        self.contents[key] = (rec.name, rec.partition)

    def check(self, rec):
        if rec.partition not in features.PARTITIONS:
            self.fail(rec, f"partition must be one of {', '.join(features.PARTITIONS)}")
        if rec.name in self.names:
            self.fail(rec, "the name occurs twice in the corpus")
        self.names.add(rec.name)
        if not math.isclose(float(rec.hop), float(self.corpus.hop), rel_tol=1e-6, abs_tol=1e-9):
            self.fail(rec, f"hop {rec.hop} s differs from the corpus hop {self.corpus.hop} s")
        if self.raw != rec.raw:
            self.fail(
                rec,
                "is a raw recording in a feature corpus"
                if rec.raw
                else "has features, but the corpus is a raw one (face crops and waveforms)",
            )
        n = self._check_raw(rec) if self.raw else None
        for modality in () if self.raw else features.MODALITIES:
            values = np.asarray(getattr(rec, modality))
            if values.ndim != 2:
                self.fail(rec, f"{modality} features must be a [frames, dims] array, got shape {values.shape}")
            if n is None:
                n = values.shape[0]
            elif values.shape[0] != n:
                self.fail(rec, f"{values.shape[0]} {modality} frames but {n} audio frames")
            expected = self.dims[modality]
            if expected is None:
                self.dims[modality], self.first[modality] = values.shape[1], rec.name
            elif values.shape[1] != expected:
                origin = (
                    f"as in recording {self.first[modality]!r}"
                    if modality in self.first
                    else "as the corpus's feature names say"
                )
                self.fail(rec, f"{values.shape[1]} {modality} features per frame, expected {expected} {origin}")
        if n == 0:
            self.fail(rec, "no frames")
        if not self.raw:
            self._check_contents(rec)
        if (rec.valence is None) != (rec.arousal is None):
            self.fail(rec, "has only one of valence and arousal")
        if rec.labelled:
            for key in features.LABEL_KEYS:
                shape = np.shape(getattr(rec, key))
                if shape not in ((), (n,)):
                    self.fail(rec, f"{key} must be a scalar or one value per frame ({n}), got shape {shape}")
            if np.ndim(rec.valence) != np.ndim(rec.arousal):
                self.fail(rec, "valence and arousal must both be per frame or both per sequence")
        for key in (TIMESTAMPS, features.AUDIO_PRESENT, features.VISUAL_PRESENT, AUDIO_CORRUPTED, VISUAL_CORRUPTED):
            value = getattr(rec, key)
            if value is not None and np.shape(value) != (n,):
                self.fail(rec, f"{key} must have one value per frame ({n}), got shape {np.shape(value)}")
        kind = (rec.labelled, rec.sequence_level)
        before = self.kind.setdefault(rec.partition, (kind, rec.name))
        if before[0] != kind:

            def describe(k):
                return "unlabelled" if not k[0] else ("sequence-level" if k[1] else "frame-level")

            self.fail(
                rec,
                f"is {describe(kind)} but recording {before[1]!r} of the same partition is "
                f"{describe(before[0])}; a partition must be labelled the same way throughout",
            )
