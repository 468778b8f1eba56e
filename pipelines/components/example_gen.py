"""ExampleGen: converts a corpus into sharded TFRecord files of `tf.train.SequenceExample`s.

Writes, under an artefact folder OUT:

* `examples/<partition>/<partition>-SSSSS-of-NNNNN.tfrecord`: one SequenceExample per recording.
  Context: `name`, `partition`, `hop`, `num_frames`, `metadata` (JSON), `labelled`,
  `sequence_level`, `has_corruption`, and for sequence-level corpora the utterance labels
  `valence` / `arousal`. Feature lists (one entry per frame): `audio` [D_a], `visual` [D_v],
  `timestamps` (int64 microseconds), `audio_present`, `visual_present`, per-frame `valence` / `arousal` (frame-level
  labelled corpora) and `audio_corrupted` / `visual_corrupted` (int 0/1, when the ground truth is
  known).
* `manifest.json`, written last: per partition the number of recordings and frames, feature
  dimensions and names, hop, the shard files with their sha256 checksums, whether it is labelled
  and sequence-level; plus the corpus fingerprint and the adapter's report (`corpus_report`; its
  `notes`, e.g. which recordings share features, are also printed as one line each).

Raw corpora (`Corpus.mode == "raw"`: face crops and waveforms) are stored differently: `visual`
holds one PNG-encoded face crop per frame (bytes), `audio` the recording's log-mel spectrogram,
one entry of `mel_bins` values per spectrogram frame (`pipelines.data.raw_inputs.compute_logmel` with
the `logmel` settings; so `audio` has its own length), and the context adds `sample_rate`. The
manifest then says `"mode": "raw"` and gives `visual_shape` [H, W, 3], `audio_shape`
[patch frames, mel bins] (the patch the input pipeline cuts per frame) and the `logmel`
settings; `audio_dim` / `visual_dim` are the mel bins and the 3 colour channels (the units the
statistics and the normalisation work in).

Re-running with an unchanged corpus fingerprint reuses the shards after checking their
checksums; a partition with a missing or corrupt shard is converted again. Shards are written
under temporary names (`.*.partial`) and renamed when the whole corpus has been read, and the
manifest is removed before and rewritten after, so a crash never leaves a set of shards that
looks complete.

    python -m pipelines.example_gen --dataset avec --data-dir DIR \\
        --audio-features egemaps --visual-features faus --output-dir OUT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from pipelines.config.flags import add_strictness_arguments
from pipelines.core import cli
from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.core.io_utils import file_digest, read_json, write_json_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.data.records import (  # noqa: F401 (the record keys and manifest helpers, also as example_gen.X)
    AUDIO_CORRUPTED,
    CORRUPTED_KEYS,
    EXAMPLES_DIR,
    FORMAT_VERSION,
    HAS_CORRUPTION,
    HOP,
    LABELLED,
    MANIFEST,
    METADATA,
    NAME,
    NUM_FRAMES,
    PARTIAL_SUFFIX,
    PARTITION,
    PRESENT_KEYS,
    RAW,
    SAMPLE_RATE,
    SEQUENCE_LEVEL,
    SHARD_SUFFIX,
    TIMESTAMPS,
    VISUAL_CORRUPTED,
    load_manifest,
    partition_info,
)
from pipelines.datasets import ADAPTERS

# Without --num-shards a partition's shard is closed once it holds this many bytes.
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024


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
    """One `Recording` as a serialised `tf.train.SequenceExample` (layout in the module docstring).

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
# Validation while converting


class _Checker:
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


# ---------------------------------------------------------------------------------------------
# Shard writing


class _PartitionWriter:
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


def _bad_partitions(root: Path, manifest: dict) -> list:
    """Partitions of an earlier manifest with a missing or corrupt shard."""
    bad = []
    for name, part in manifest.get("partitions", {}).items():
        for shard in part.get("shards", []):
            path = root / shard["file"]
            if not path.is_file() or path.stat().st_size != shard.get("bytes") or file_digest(path) != shard["sha256"]:
                bad.append(name)
                break
    return bad


def _settings(num_shards, shard_bytes) -> dict:
    return {"num_shards": num_shards, "shard_bytes": None if num_shards else shard_bytes}


def run(corpus, output_dir, *, num_shards=None, progress=True, shard_bytes=DEFAULT_SHARD_BYTES, logmel=None) -> dict:
    """Converts `corpus` into TFRecord shards and a manifest under `output_dir`; returns the manifest.

    Args:
        corpus: `pipelines.datasets.Corpus`.
        output_dir: str or Path. The artefact folder (created if needed).
        num_shards: optional int >= 1. Shards per partition, recordings dealt round-robin (fewer
            when a partition has fewer recordings). Defaults to None: a new shard every
            `shard_bytes` bytes.
        progress: bool. Show a tqdm progress bar. Defaults to True.
        shard_bytes: int. Shard size without `num_shards`. Defaults to 64 MiB.
        logmel: optional dict. Raw corpora: log-mel settings (`pipelines.data.raw_inputs`; missing keys
            take `DEFAULT_LOGMEL`). Ignored for feature corpora.

    Returns:
        dict: the manifest (see the module docstring); `reused` lists the partitions whose shards
        were kept from an earlier run with the same corpus fingerprint.

    Raises:
        DataError: a recording is inconsistent (dimensions, lengths, labels), naming it.
        ConfigError: a bad `num_shards`.
    """
    if num_shards is not None and (not isinstance(num_shards, (int, np.integer)) or num_shards < 1):
        raise ConfigError(f"num_shards must be a positive integer or None, got {num_shards!r}")
    raw = corpus.mode == RAW
    if raw:
        from pipelines.data import raw_inputs

        logmel = raw_inputs.validate_logmel(logmel, corpus.hop)
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST
    settings = _settings(num_shards, shard_bytes)
    if raw:
        settings["logmel"] = logmel
    try:
        old = read_json(manifest_path) if manifest_path.is_file() else None
    except (OSError, ValueError):
        old = None
    redo = None  # None: every partition
    if (
        old
        and old.get("format_version") == FORMAT_VERSION
        and old.get("fingerprint") == corpus.fingerprint
        and old.get("settings") == settings
    ):
        redo = _bad_partitions(root, old)
        if not redo:
            if progress:
                print(f"example_gen: {root} is up to date (fingerprint {corpus.fingerprint[:12]})", file=sys.stderr)
            print_notes(old.get("corpus_report", {}))
            return {**old, "reused": sorted(old["partitions"])}
        if progress:
            print(
                f"example_gen: missing or corrupt shards in {', '.join(redo)}; converting them again", file=sys.stderr
            )
    # No manifest while shards change: an interrupted run never looks complete.
    manifest_path.unlink(missing_ok=True)

    from tqdm import tqdm

    started = time.time()
    checker = _Checker(corpus, mel_bins=logmel["mel_bins"] if raw else None)
    writers = {}
    examples = root / EXAMPLES_DIR
    try:
        for recording in tqdm(
            corpus.recordings(), desc=f"example_gen {corpus.dataset}", unit="rec", disable=not progress, file=sys.stderr
        ):
            checker.check(recording)
            if redo is not None and recording.partition not in redo:
                continue
            writer = writers.get(recording.partition)
            if writer is None:
                writer = writers[recording.partition] = _PartitionWriter(
                    examples / recording.partition, recording.partition, num_shards, shard_bytes
                )
            writer.write(recording, serialize_recording(recording, logmel))
            pause_point("example_gen.shard")
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    if not writers and redo is None:
        raise DataError("the corpus has no recordings", corpus.root)

    partitions = {} if redo is None else {k: v for k, v in old["partitions"].items() if k not in redo}
    names = {features.AUDIO: list(corpus.audio_feature_names), features.VISUAL: list(corpus.visual_feature_names)}
    raw_entry = {}
    if raw:
        names = {
            features.AUDIO: [f"mel_{i}" for i in range(logmel["mel_bins"])],
            features.VISUAL: list(raw_inputs.FACE_CHANNELS),
        }
        face_shape = checker.face_shape or tuple((old or {}).get("visual_shape", ()))
        raw_entry = {
            "mode": RAW,
            "visual_shape": list(face_shape),
            "audio_shape": [raw_inputs.patch_frames(logmel), logmel["mel_bins"]],
            "logmel": logmel,
            SAMPLE_RATE: checker.sample_rate or (old or {}).get(SAMPLE_RATE),
        }
    for name, writer in writers.items():
        labelled, sequence_level = writer.kind
        partitions[name] = {
            "num_recordings": writer.index,
            "num_frames": writer.frames,
            "hop": float(corpus.hop),
            "audio_dim": checker.dims[features.AUDIO],
            "visual_dim": checker.dims[features.VISUAL],
            "audio_feature_names": names[features.AUDIO],
            "visual_feature_names": names[features.VISUAL],
            **raw_entry,
            "labelled": bool(labelled),
            "sequence_level": bool(sequence_level),
            "has_corruption": writer.has_corruption > 0,
            "recordings": writer.recordings,
            "shards": writer.finish(root),
        }
    if redo is None and examples.is_dir():
        for folder in examples.iterdir():
            if folder.is_dir() and folder.name not in partitions:
                for path in folder.glob(f"*{SHARD_SUFFIX}"):
                    path.unlink()
    order = [p for p in features.PARTITIONS if p in partitions]
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": corpus.dataset,
        "corpus_root": str(corpus.root),
        "fingerprint": corpus.fingerprint,
        "settings": settings,
        "hop": float(corpus.hop),
        "audio_dim": checker.dims[features.AUDIO],
        "visual_dim": checker.dims[features.VISUAL],
        "audio_feature_names": names[features.AUDIO],
        "visual_feature_names": names[features.VISUAL],
        **raw_entry,
        "partitions": {p: partitions[p] for p in order},
        "corpus_report": corpus.report if redo is None or corpus.report else old.get("corpus_report", {}),
        "conversion_seconds": round(time.time() - started, 3),
    }
    write_json_atomic(manifest_path, manifest)
    print_notes(manifest["corpus_report"])
    reused = sorted(set(order) - set(writers))
    if progress:
        summary = ", ".join(
            f"{p}: {partitions[p]['num_recordings']} rec / {partitions[p]['num_frames']} frames" for p in order
        )
        print(f"example_gen: wrote {root} ({summary})", file=sys.stderr)
    return {**manifest, "reused": reused}


def print_notes(corpus_report: dict) -> None:
    """Prints the adapter's notes (`corpus_report["notes"]`: what it accepted or skipped that a
    user should know, each one line) on stderr, whatever the progress setting."""
    for note in corpus_report.get("notes", []):
        print(f"example_gen: {note}", file=sys.stderr)


def _split(value):
    return [item for item in (value or "").split(",") if item]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.example_gen",
        description="Convert a corpus into sharded TFRecord SequenceExamples plus manifest.json. "
        "Re-running with unchanged corpus files reuses the shards (checksums are verified).",
    )
    parser.add_argument("--dataset", required=True, choices=tuple(ADAPTERS), help="corpus adapter")
    parser.add_argument(
        "--data-dir",
        required=True,
        help="corpus folder (AVEC/synthetic: holds labels/ and the feature folders; IEMOCAP: holds Session1..Session5)",
    )
    parser.add_argument(
        "--audio-features",
        default=None,
        help="comma-separated audio feature folders, concatenated per frame "
        "(IEMOCAP: the audio modality folder under --features-dir)",
    )
    parser.add_argument("--visual-features", default=None, help="comma-separated visual feature folders")
    parser.add_argument(
        "--features-dir",
        default=None,
        help="IEMOCAP only: folder of per-utterance feature files <modality>/<utterance id>",
    )
    parser.add_argument(
        "--validation-speaker",
        default=None,
        choices=("F", "M"),
        help="IEMOCAP only: the session-5 speaker used for validation (the other one is test)",
    )
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="IEMOCAP only: keep utterances with one modality missing (zero-filled, flagged)",
    )
    parser.add_argument("--output-dir", required=True, help="artefact folder to write")
    parser.add_argument(
        "--num-shards", type=int, default=None, help="shards per partition (default: a new shard every 64 MiB)"
    )
    parser.add_argument(
        "--mel-bins", type=int, default=None, help="raw corpora: mel bins of the log-mel spectrogram (default 64)"
    )
    parser.add_argument(
        "--mel-hop-seconds",
        type=float,
        default=None,
        help="raw corpora: hop of the log-mel spectrogram in seconds (default 0.01)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_strictness_arguments(parser)
    cli.finish_parser(parser)
    return parser


def strictness_option(dataset: str, strict) -> dict:
    """The adapter option for `strict` (None or True: strict, the adapters' default)."""
    if strict is None or strict:
        return {}
    if dataset not in ("avec", "iemocap"):
        raise ConfigError(f"--lenient (strict: false) applies to the avec and iemocap corpora, not {dataset}")
    return {"strict": False}


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    # Checks only (`run` makes the folder once the corpus reads), before the corpus is read.
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    options = {}
    audio, visual = _split(args.audio_features), _split(args.visual_features)
    if args.dataset == "iemocap":
        if len(audio) > 1 or len(visual) > 1:
            raise ConfigError("IEMOCAP takes one folder per modality in --audio-features / --visual-features")
        if audio:
            options["audio_features"] = audio[0]
        if visual:
            options["visual_features"] = visual[0]
        if args.features_dir:
            options["features_dir"] = args.features_dir
        if args.validation_speaker:
            options["validation_speaker"] = args.validation_speaker
    else:
        for flag in ("features_dir", "validation_speaker"):
            if getattr(args, flag):
                raise ConfigError(f"--{flag.replace('_', '-')} applies to --dataset iemocap only")
        if audio:
            options["audio_features"] = audio
        if visual:
            options["visual_features"] = visual
    if args.allow_missing_modality:
        options["allow_missing_modality"] = True
    options.update(strictness_option(args.dataset, getattr(args, "strict", None)))
    if args.num_shards is not None and args.num_shards < 1:
        raise ConfigError(f"--num-shards must be at least 1, got {args.num_shards}")
    from pipelines.datasets import open_corpus

    corpus = open_corpus(args.dataset, args.data_dir, **options)
    logmel = {
        key: value
        for key, value in (("mel_bins", args.mel_bins), ("hop_seconds", args.mel_hop_seconds))
        if value is not None
    }
    run(corpus, args.output_dir, num_shards=args.num_shards, progress=not args.no_progress, logmel=logmel)
