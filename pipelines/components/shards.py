"""Writing ExampleGen's records: a recording as a `tf.train.SequenceExample`, a partition's shards.

The record layout is described in `pipelines.components.example_gen`; the keys are those of
`pipelines.data.records`. Shards are written under temporary names (`.*.partial`) and renamed into
place by `PartitionWriter.finish`; `bad_partitions` finds an earlier run's missing or corrupt shards.
TensorFlow is imported where a record is built, not at import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pipelines.core.io_utils import file_digest
from pipelines.data import features
from pipelines.data.records import (
    CORRUPTED_KEYS,
    HAS_CORRUPTION,
    HOP,
    LABELLED,
    METADATA,
    NAME,
    NUM_FRAMES,
    PARTIAL_SUFFIX,
    PARTITION,
    PRESENT_KEYS,
    SAMPLE_RATE,
    SEQUENCE_LEVEL,
    SHARD_SUFFIX,
    TIMESTAMPS,
)

# ---------------------------------------------------------------------------------------------
# Serialisation


def _floats(rows):
    import tensorflow as tf

    # `tolist()` first: building a FloatList from Python floats is several times faster than from
    # numpy rows.
    return tf.train.FeatureList(
        feature=[
            tf.train.Feature(float_list=tf.train.FloatList(value=row))
            for row in np.asarray(rows, np.float32).reshape(len(rows), -1).tolist()
        ]
    )


def _ints(values):
    import tensorflow as tf

    return tf.train.FeatureList(
        feature=[
            tf.train.Feature(int64_list=tf.train.Int64List(value=[v])) for v in np.asarray(values, np.int64).tolist()
        ]
    )


def serialize_recording(recording, logmel=None) -> bytes:
    """One `Recording` as a serialised `tf.train.SequenceExample` (layout in `pipelines.components.example_gen`).

    A raw recording needs `logmel`, the complete log-mel settings (`raw_inputs.validate_logmel`).
    """
    import tensorflow as tf

    n = recording.num_frames
    hop = float(recording.hop)
    timestamps = recording.timestamps if recording.timestamps is not None else np.arange(n) * hop
    has_corruption = recording.audio_corrupted is not None or recording.visual_corrupted is not None

    def float_feature(value):
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))

    def int_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    def bytes_feature(value: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    context = {
        NAME: bytes_feature(recording.name),
        PARTITION: bytes_feature(recording.partition),
        HOP: float_feature(hop),
        NUM_FRAMES: int_feature(n),
        METADATA: bytes_feature(json.dumps(recording.metadata or {}, sort_keys=True, default=str)),
        LABELLED: int_feature(recording.labelled),
        SEQUENCE_LEVEL: int_feature(recording.sequence_level),
        HAS_CORRUPTION: int_feature(has_corruption),
    }
    if recording.raw:
        from pipelines.data import raw_inputs

        context[SAMPLE_RATE] = int_feature(recording.sample_rate)
        spectrogram = raw_inputs.compute_logmel(recording.waveform, recording.sample_rate, logmel)
        lists = {
            features.AUDIO: _floats(spectrogram),
            features.VISUAL: tf.train.FeatureList(
                feature=[
                    tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))
                    for png in raw_inputs.encode_faces(recording.faces)
                ]
            ),
        }
    else:
        lists = {features.AUDIO: _floats(recording.audio), features.VISUAL: _floats(recording.visual)}
    lists.update(
        {
            # Whole microseconds: exact for the corpora's timestamps, unlike a float32 FloatList.
            TIMESTAMPS: _ints(np.round(np.asarray(timestamps, np.float64) * 1e6)),
        }
    )
    for modality, key in PRESENT_KEYS.items():
        present = getattr(recording, key)
        lists[key] = _floats((np.ones(n, np.float32) if present is None else present).reshape(n, 1))
    if recording.labelled:
        for key in features.LABEL_KEYS:
            value = getattr(recording, key)
            if recording.sequence_level:
                context[key] = float_feature(value)
            else:
                lists[key] = _floats(np.asarray(value, np.float32).reshape(n, 1))
    if has_corruption:
        for modality, key in CORRUPTED_KEYS.items():
            flags = getattr(recording, key)
            lists[key] = _ints(np.zeros(n, np.int64) if flags is None else np.asarray(flags, bool))
    example = tf.train.SequenceExample(
        context=tf.train.Features(feature=context), feature_lists=tf.train.FeatureLists(feature_list=lists)
    )
    # Deterministic: the same recording gives the same bytes in every process (map fields such as
    # the context are otherwise written in an order that can differ between processes).
    return example.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------------
# Shard writing


class PartitionWriter:
    """Writes one partition's shards under temporary names; `finish` renames them into place."""

    def __init__(self, directory: Path, partition: str, num_shards, shard_bytes):
        import tensorflow as tf

        self._tf = tf
        self.directory = directory
        self.partition = partition
        self.num_shards = num_shards
        self.shard_bytes = shard_bytes
        self.temp_paths, self.writers, self.sizes, self.counts = [], [], [], []
        self.index = 0
        self.recordings = []  # (name, frames)
        self.frames = 0
        self.has_corruption = 0
        self.kind = None
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f".*{PARTIAL_SUFFIX}"):
            stale.unlink()

    def _open(self):
        path = self.directory / f".{self.partition}-{len(self.writers):05d}-{os.getpid()}{SHARD_SUFFIX}{PARTIAL_SUFFIX}"
        self.temp_paths.append(path)
        self.writers.append(self._tf.io.TFRecordWriter(str(path)))
        self.sizes.append(0)
        self.counts.append(0)

    def write(self, recording, record: bytes):
        if self.num_shards:
            while len(self.writers) < min(self.num_shards, self.index + 1):
                self._open()
            shard = self.index % self.num_shards
        else:
            if not self.writers or self.sizes[-1] >= self.shard_bytes:
                if self.writers:
                    self.writers[-1].close()
                self._open()
            shard = len(self.writers) - 1
        self.writers[shard].write(record)
        self.sizes[shard] += len(record)
        self.counts[shard] += 1
        self.index += 1
        self.recordings.append([recording.name, recording.num_frames])
        self.frames += recording.num_frames
        self.has_corruption += int(recording.audio_corrupted is not None or recording.visual_corrupted is not None)
        self.kind = (recording.labelled, recording.sequence_level)

    def close(self):
        for writer in self.writers:
            writer.close()

    def finish(self, root: Path) -> list:
        """Renames the shards to their final names, removes older ones, returns the shard entries."""
        self.close()
        total = len(self.temp_paths)
        shards = []
        for i, temp in enumerate(self.temp_paths):
            final = self.directory / f"{self.partition}-{i:05d}-of-{total:05d}{SHARD_SUFFIX}"
            os.replace(temp, final)
            shards.append(
                {
                    "file": final.relative_to(root).as_posix(),
                    "num_recordings": self.counts[i],
                    "bytes": final.stat().st_size,
                    "sha256": file_digest(final),
                }
            )
        keep = {self.directory / Path(s["file"]).name for s in shards}
        for old in self.directory.glob(f"*{SHARD_SUFFIX}"):
            if old not in keep:
                old.unlink()
        return shards

    def discard(self):
        self.close()
        for temp in self.temp_paths:
            temp.unlink(missing_ok=True)


def bad_partitions(root: Path, manifest: dict) -> list:
    """Partitions of an earlier manifest with a missing or corrupt shard."""
    bad = []
    for name, part in manifest.get("partitions", {}).items():
        for shard in part.get("shards", []):
            path = root / shard["file"]
            if not path.is_file() or path.stat().st_size != shard.get("bytes") or file_digest(path) != shard["sha256"]:
                bad.append(name)
                break
    return bad
