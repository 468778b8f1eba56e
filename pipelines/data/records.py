"""ExampleGen's records: their keys, the manifest, and reading them back (parse specs, whole recordings).

The one module every component reads records through: `example_gen` writes them with these keys,
`statistics_gen`, `transform` and `input_pipeline` read them with these functions. It imports
nothing of the components. TensorFlow is imported inside the functions that parse, so that the
command-line parsers of the components can import the keys without loading it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.core.errors import DataError
from pipelines.core.io_utils import read_json
from pipelines.data import features

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EXAMPLES_DIR = "examples"
SHARD_SUFFIX = ".tfrecord"
PARTIAL_SUFFIX = ".partial"

# Record keys besides the ones in `pipelines.data.features`.
NAME = "name"
PARTITION = "partition"
HOP = "hop"
NUM_FRAMES = "num_frames"
METADATA = "metadata"
LABELLED = "labelled"
SEQUENCE_LEVEL = "sequence_level"
HAS_CORRUPTION = "has_corruption"
TIMESTAMPS = "timestamps"
SAMPLE_RATE = "sample_rate"
RAW = "raw"
AUDIO_CORRUPTED = "audio_corrupted"
VISUAL_CORRUPTED = "visual_corrupted"
CORRUPTED_KEYS = {features.AUDIO: AUDIO_CORRUPTED, features.VISUAL: VISUAL_CORRUPTED}
PRESENT_KEYS = {features.AUDIO: features.AUDIO_PRESENT, features.VISUAL: features.VISUAL_PRESENT}


def load_manifest(artifact_dir) -> dict:
    """Reads `manifest.json` of an artefact folder; a DataError if it is missing or unreadable."""
    path = Path(artifact_dir) / MANIFEST
    if not path.is_file():
        raise DataError(
            f"no manifest.json: run `python -m pipelines.example_gen ... --output-dir {artifact_dir}` first", path
        )
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as error:
        raise DataError(f"unreadable manifest ({error})", path) from error
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"not a format-{FORMAT_VERSION} manifest; run ExampleGen again", path)
    return manifest


def partition_info(artifact_dir, partition: str) -> dict:
    """The manifest entry of one partition; a DataError naming the ones there are otherwise."""
    manifest = load_manifest(artifact_dir)
    if partition not in manifest["partitions"]:
        raise DataError(
            f"no partition {partition!r} in this corpus (there are: {', '.join(manifest['partitions']) or 'none'})",
            Path(artifact_dir) / MANIFEST,
        )
    return manifest["partitions"][partition]


# ---------------------------------------------------------------------------------------------
# Parsing


def shard_paths(artifact_dir, partition):
    info = partition_info(artifact_dir, partition)
    paths = [str(Path(artifact_dir) / shard["file"]) for shard in info["shards"]]
    for path in paths:
        if not Path(path).is_file():
            raise DataError("shard listed in manifest.json is missing; run ExampleGen again", path)
    return info, paths


def parse_spec(info: dict, ragged=False, labels_only=False):
    """Context and sequence feature specs for one partition's SequenceExamples.

    Args:
        info: the partition's manifest entry.
        ragged: parse `audio` / `visual` as ragged [N, None] (tolerates a wrong dimension, for
            the validator) instead of fixed [N, D].
        labels_only: parse only what the labels need (cheap passes over the train split).
    """
    import tensorflow as tf  # here, not at the top: the keys above must not load it

    context = {NAME: tf.io.FixedLenFeature([], tf.string), NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64)}
    sequence = {}
    if not labels_only:
        context.update(
            {
                PARTITION: tf.io.FixedLenFeature([], tf.string),
                HOP: tf.io.FixedLenFeature([], tf.float32),
                METADATA: tf.io.FixedLenFeature([], tf.string),
                HAS_CORRUPTION: tf.io.FixedLenFeature([], tf.int64),
            }
        )
        if is_raw(info):
            if ragged:
                raise ValueError("raw partitions have no ragged form; read them with iter_recordings")
            # `audio`: the log-mel spectrogram frames; `visual`: one PNG per frame.
            sequence[features.AUDIO] = tf.io.FixedLenSequenceFeature([info["audio_dim"]], tf.float32)
            sequence[features.VISUAL] = tf.io.FixedLenSequenceFeature([], tf.string)
        for modality in () if is_raw(info) else features.MODALITIES:
            sequence[modality] = (
                tf.io.RaggedFeature(tf.float32)
                if ragged
                else tf.io.FixedLenSequenceFeature([info[f"{modality}_dim"]], tf.float32)
            )
        sequence[TIMESTAMPS] = tf.io.FixedLenSequenceFeature([], tf.int64)
        for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT):
            sequence[key] = tf.io.FixedLenSequenceFeature([], tf.float32)
        if info.get("has_corruption"):
            for key in CORRUPTED_KEYS.values():
                sequence[key] = tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True)
    if info["labelled"]:
        for key in features.LABEL_KEYS:
            if info["sequence_level"]:
                context[key] = tf.io.FixedLenFeature([], tf.float32)
            else:
                sequence[key] = tf.io.FixedLenSequenceFeature([], tf.float32)
    return context, sequence


def is_raw(info) -> bool:
    """Whether a manifest (or partition entry) describes a raw corpus."""
    return info.get("mode") == RAW


def parser(info, ragged=False, labels_only=False):
    """Parses one record; a raw record's `audio` becomes [N, P, M] patches, `visual` stays PNG bytes [N]."""
    import tensorflow as tf  # here, not at the top: the keys above must not load it

    context_spec, sequence_spec = parse_spec(info, ragged=ragged, labels_only=labels_only)

    def parse(serialized):
        context, sequence = tf.io.parse_single_sequence_example(serialized, context_spec, sequence_spec)
        out = {**context, **sequence}
        if is_raw(info) and not labels_only:
            from pipelines.data import raw_inputs

            out[features.AUDIO] = raw_inputs.logmel_patches(
                out[features.AUDIO], context[NUM_FRAMES], float(info["hop"]), info["logmel"]
            )
        if info["labelled"] and info["sequence_level"]:
            n = tf.cast(context[NUM_FRAMES], tf.int32)
            for key in features.LABEL_KEYS:
                out[key] = tf.fill([n], context[key])  # the utterance label on every frame
                out[f"{key}_utterance"] = context[key]
        return out

    return parse


def iter_recordings(artifact_dir, partition):
    """Whole recordings of a partition as NumPy, in shard order.

    Yields:
        dict with `name`, `partition`, `hop` (float), `num_frames`, `metadata` (dict),
        `labelled`, `sequence_level` (bools), `audio` [N, D_a] and `visual` [N, D_v] float32
        (raw corpora: `audio` [N, P, M] float32 log-mel patches, `visual` [N, H, W, 3] uint8 faces),
        `valence` / `arousal` ([N] float32 per frame, a float32 scalar for sequence-level corpora,
        None when unlabelled), `timestamps` [N] float64 seconds, `audio_present` / `visual_present` [N] float32 and,
        when the corpus knows them, `audio_corrupted` / `visual_corrupted` [N] bool.
    """
    import tensorflow as tf  # here, not at the top: the keys above must not load it

    info, paths = shard_paths(artifact_dir, partition)
    parse = parser(info)
    dataset = read_records(paths, parse)
    if is_raw(info):
        dataset = dataset.map(lambda e: {**e, features.VISUAL: decode_faces(e[features.VISUAL], info)})
    try:
        for example in dataset.as_numpy_iterator():
            has_corruption = bool(example[HAS_CORRUPTION])
            out = {
                "name": example[NAME].decode("utf-8"),
                "partition": example[PARTITION].decode("utf-8"),
                "hop": float(example[HOP]),
                "num_frames": int(example[NUM_FRAMES]),
                "metadata": json.loads(example[METADATA].decode("utf-8")),
                "labelled": bool(info["labelled"]),
                "sequence_level": bool(info["sequence_level"]),
                features.AUDIO: example[features.AUDIO],
                features.VISUAL: example[features.VISUAL],
                TIMESTAMPS: example[TIMESTAMPS] / 1e6,
                features.AUDIO_PRESENT: example[features.AUDIO_PRESENT],
                features.VISUAL_PRESENT: example[features.VISUAL_PRESENT],
            }
            for key in features.LABEL_KEYS:
                if not info["labelled"]:
                    out[key] = None
                elif info["sequence_level"]:
                    out[key] = np.float32(example[f"{key}_utterance"])
                else:
                    out[key] = example[key]
            if has_corruption:
                for key in CORRUPTED_KEYS.values():
                    out[key] = example[key].astype(bool)
            yield out
    except tf.errors.InvalidArgumentError as error:
        raise DataError(
            f"partition {partition!r} does not match its manifest entry "
            f"({error.message.splitlines()[0]}); run the example validator",
            paths[0],
        ) from error


def label_arrays(artifact_dir, partition):
    """Per-recording label arrays of a labelled partition, parsed without the features.

    Returns:
        list of (valence, arousal) float32 NumPy pairs: per-frame arrays, or for sequence-level
        corpora arrays of length 1 holding the utterance label.
    """

    info, paths = shard_paths(artifact_dir, partition)
    if not info["labelled"]:
        raise DataError(f"partition {partition!r} has no labels", Path(artifact_dir) / MANIFEST)
    parse = parser(info, labels_only=True)
    out = []
    for example in read_records(paths, parse).as_numpy_iterator():
        if info["sequence_level"]:
            out.append(tuple(np.float32(example[f"{k}_utterance"]).reshape(1) for k in features.LABEL_KEYS))
        else:
            out.append(tuple(example[k] for k in features.LABEL_KEYS))
    return out


def read_records(paths, parse):
    """The records of the shard files `paths`, in order, each passed through `parse` (untuned)."""
    import tensorflow as tf  # here, not at the top: the keys above must not load it

    return untuned(tf.data.TFRecordDataset(paths).map(parse))


def untuned(dataset):
    """`dataset` without tf.data's autotuning, whose thread can delay freeing an iterator.

    With TensorFlow 2.21, freeing an autotuned iterator was seen to block until the autotuning
    thread's timed sleep ended: up to several seconds at the end of a tiny `fit`, up to most of a
    minute in a process that trains many models. Without it, `AUTOTUNE` parallelism is min(16, cores).
    """
    import tensorflow as tf  # here, not at the top: the keys above must not load it

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def decode_faces(encoded, info):
    from pipelines.data import raw_inputs

    return raw_inputs.decode_faces(encoded, info["visual_shape"])
