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

The records and shards are written by `pipelines.components.shards`, after
`pipelines.components.recording_checks` has checked each recording.

    python -m pipelines.example_gen --dataset avec --data-dir DIR \\
        --audio-features egemaps --visual-features faus --output-dir OUT
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pipelines.components.recording_checks import RecordingChecker
from pipelines.components.shards import PartitionWriter, bad_partitions, serialize_recording
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.data.records import EXAMPLES_DIR, FORMAT_VERSION, MANIFEST, RAW, SAMPLE_RATE, SHARD_SUFFIX

# Without --num-shards a partition's shard is closed once it holds this many bytes.
DEFAULT_SHARD_BYTES = 64 * 1024 * 1024


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
        redo = bad_partitions(root, old)
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
    checker = RecordingChecker(corpus, mel_bins=logmel["mel_bins"] if raw else None)
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
                writer = writers[recording.partition] = PartitionWriter(
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


def strictness_option(dataset: str, strict) -> dict:
    """The adapter option for `strict` (None or True: strict, the adapters' default)."""
    if strict is None or strict:
        return {}
    if dataset not in ("avec", "iemocap"):
        raise ConfigError(f"--lenient (strict: false) applies to the avec and iemocap corpora, not {dataset}")
    return {"strict": False}
