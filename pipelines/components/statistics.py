"""StatisticsGen: per-partition statistics of ExampleGen's shards, written to `statistics.json`.

Per partition, per modality and feature: count of finite values on frames where the modality is
present, mean, std (ddof=0), min, max, NaN and Inf counts, the feature dimensions seen; per label:
the same moments, values outside [-1, 1], and the three-way class-bin counts (frames, or utterances
for sequence-level corpora). Moments are accumulated in float64, one recording at a time (Chan et
al.'s pairwise update, `MomentAccumulator`). Plus, from the manifest's corpus report, the recordings
that share feature values within a partition (`recordings_sharing_features`: the partners of a
dyadic conversation share its audio) and the feature files shared between partitions
(`shared_across_partitions`), when there are any. `statistics.txt` is a summary.

Records are read so that a recording with a wrong feature dimension is counted, not fatal: the
validator (`pipelines.components.anomalies`) reports it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import DataError
from pipelines.core.io_utils import read_current_json, write_json_atomic, write_text_atomic
from pipelines.data import features, records
from pipelines.data.labels import to_classes

FORMAT_VERSION = 1
STATISTICS = "statistics.json"
LABEL_RANGE = (-1.0, 1.0)


def data_key(manifest: dict) -> str:
    """A digest of the shards' checksums: derived artefacts are stale when it changes."""
    shards = {p: [s["sha256"] for s in part["shards"]] for p, part in manifest["partitions"].items()}
    return hashlib.sha256(json.dumps(shards, sort_keys=True).encode()).hexdigest()


def _json_list(values):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


class MomentAccumulator:
    """Streaming per-column count, mean, M2, min, max and NaN/Inf counts in float64.

    Only finite values enter the moments; NaN and Inf are counted per column.

    >>> acc = MomentAccumulator(2)
    >>> acc.update(np.array([[1.0, 2.0], [3.0, np.nan]]))
    >>> acc.mean.tolist(), acc.nan_count.tolist()
    ([2.0, 2.0], [0, 1])
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = np.zeros(dim, np.int64)
        self.mean = np.zeros(dim, np.float64)
        self.m2 = np.zeros(dim, np.float64)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.nan_count = np.zeros(dim, np.int64)
        self.inf_count = np.zeros(dim, np.int64)

    def update(self, values):
        x = np.asarray(values, np.float64).reshape(-1, self.dim)
        finite = np.isfinite(x)
        self.nan_count += np.isnan(x).sum(axis=0)
        self.inf_count += np.isinf(x).sum(axis=0)
        n_b = finite.sum(axis=0)
        if not n_b.any():
            return
        safe_n_b = np.maximum(n_b, 1)
        mean_b = np.where(finite, x, 0.0).sum(axis=0) / safe_n_b
        m2_b = (np.where(finite, x - mean_b, 0.0) ** 2).sum(axis=0)
        n = self.count + n_b
        safe_n = np.maximum(n, 1)
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / safe_n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe_n
        self.count = n
        self.min = np.minimum(self.min, np.where(finite, x, np.inf).min(axis=0))
        self.max = np.maximum(self.max, np.where(finite, x, -np.inf).max(axis=0))

    @property
    def variance(self):
        """Population variance (ddof=0); NaN where a column has no finite value."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.m2 / np.maximum(self.count, 1), np.nan)

    def to_json(self) -> dict:
        defined = self.count > 0
        return {
            "count": self.count.tolist(),
            "mean": _json_list(np.where(defined, self.mean, np.nan)),
            "std": _json_list(np.sqrt(self.variance)),
            "min": _json_list(np.where(defined, self.min, np.nan)),
            "max": _json_list(np.where(defined, self.max, np.nan)),
            "nan_count": self.nan_count.tolist(),
            "inf_count": self.inf_count.tolist(),
        }


# ---------------------------------------------------------------------------------------------
# Reading that tolerates a wrong feature dimension


def _raw_examples(artifact_dir, partition, info):
    """A raw partition's recordings in the form of `_tolerant_examples`: values per frame of a raw
    input are its log-mel patch (rows of mel bins) or its face crop (rows of colour channels)."""
    for recording in records.iter_recordings(artifact_dir, partition):
        example = {
            records.NAME: recording["name"].encode("utf-8"),
            records.NUM_FRAMES: recording["num_frames"],
            records.HOP: recording["hop"],
        }
        for modality in features.MODALITIES:
            values = recording[modality]
            rows = values.reshape(-1, info[f"{modality}_dim"])
            example[f"{modality}_flat"] = rows.reshape(-1)
            example[f"{modality}_lengths"] = np.full(len(rows), info[f"{modality}_dim"], np.int32)
            example[records.PRESENT_KEYS[modality]] = recording[records.PRESENT_KEYS[modality]]
        for key in features.LABEL_KEYS:
            if info["labelled"]:
                example[f"{key}_utterance" if info["sequence_level"] else key] = recording[key]
        yield example


def _tolerant_examples(artifact_dir, partition):
    """Parsed recordings with each modality as flat values plus per-frame lengths (NumPy)."""
    import tensorflow as tf  # here, not at the top: argument parsing must not load it

    info, paths = records.shard_paths(artifact_dir, partition)
    if records.is_raw(info):
        yield from _raw_examples(artifact_dir, partition, info)
        return
    parse = records.parser(info, ragged=True)

    def flatten(serialized):
        example = parse(serialized)
        for modality in features.MODALITIES:
            ragged = example.pop(modality)
            example[f"{modality}_flat"] = ragged.flat_values
            example[f"{modality}_lengths"] = tf.cast(ragged.row_lengths(), tf.int32)
        return example

    try:
        yield from records.read_records(paths, flatten).as_numpy_iterator()
    except tf.errors.InvalidArgumentError as error:
        raise DataError(
            f"unreadable records in partition {partition!r}: {error.message.splitlines()[0]}", paths[0]
        ) from error


def partition_statistics(artifact_dir, partition, info, bar=False) -> dict:
    """Statistics of one partition (module docstring), one recording at a time; `bar`: a progress bar."""
    dims = {m: info[f"{m}_dim"] for m in features.MODALITIES}
    moments = {m: MomentAccumulator(dims[m]) for m in features.MODALITIES}
    labels = {k: MomentAccumulator(1) for k in features.LABEL_KEYS}
    class_counts = {k: np.zeros(features.NUM_CLASSES, np.int64) for k in features.LABEL_KEYS}
    out_of_range = {k: 0 for k in features.LABEL_KEYS}
    dims_seen = {m: set() for m in features.MODALITIES}
    mismatched = {m: [] for m in features.MODALITIES}
    absent = {m: 0 for m in features.MODALITIES}
    hops, recordings, frames = set(), 0, 0
    examples = cli.progress_bar(
        _tolerant_examples(artifact_dir, partition),
        f"statistics {partition}",
        total=info.get("num_recordings"),
        enabled=bar,
    )
    for example in examples:
        recordings += 1
        name = example[records.NAME].decode("utf-8")
        frames += int(example[records.NUM_FRAMES])
        hops.add(round(float(example[records.HOP]), 9))
        for modality in features.MODALITIES:
            lengths = example[f"{modality}_lengths"]
            seen = set(np.unique(lengths).tolist())
            dims_seen[modality] |= seen
            present = example[records.PRESENT_KEYS[modality]] > 0
            absent[modality] += int((~present).sum())
            if seen != {dims[modality]}:
                mismatched[modality].append(name)
                continue
            # [frames, values per frame]: one row of D features, or a raw frame's rows of D values.
            values = example[f"{modality}_flat"].reshape(len(present), -1)
            moments[modality].update(values[present])
        if info["labelled"]:
            for key in features.LABEL_KEYS:
                value = example[f"{key}_utterance"] if info["sequence_level"] else example[key]
                value = np.asarray(value, np.float32).reshape(-1)
                labels[key].update(value[:, None])
                finite = value[np.isfinite(value)]
                class_counts[key] += np.bincount(to_classes(finite), minlength=features.NUM_CLASSES)
                out_of_range[key] += int(((finite < LABEL_RANGE[0]) | (finite > LABEL_RANGE[1])).sum())
    stats = {
        "num_recordings": recordings,
        "num_frames": frames,
        "hops": sorted(hops),
        "labelled": bool(info["labelled"]),
        "sequence_level": bool(info["sequence_level"]),
    }
    for modality in features.MODALITIES:
        stats[modality] = {
            "names": list(info[f"{modality}_feature_names"]),
            "dims_seen": sorted(dims_seen[modality]),
            "recordings_with_wrong_dim": mismatched[modality],
            "absent_frames": absent[modality],
            **moments[modality].to_json(),
        }
    if info["labelled"]:
        stats["labels"] = {}
        for key in features.LABEL_KEYS:
            entry = {name: value[0] for name, value in labels[key].to_json().items()}
            entry["unit"] = "utterance" if info["sequence_level"] else "frame"
            entry["out_of_range"] = out_of_range[key]
            entry["class_counts"] = class_counts[key].tolist()
            stats["labels"][key] = entry
    return stats


def compute_statistics(artifact_dir, bar=False) -> dict:
    """StatisticsGen: statistics of every partition; reuses `statistics.json` when the shards are unchanged."""
    manifest = records.load_manifest(artifact_dir)
    key = data_key(manifest)
    path = Path(artifact_dir) / STATISTICS
    old = read_current_json(path, key, FORMAT_VERSION)
    if old is not None:
        return old
    stats = {
        "format_version": FORMAT_VERSION,
        "data_key": key,
        "fingerprint": manifest["fingerprint"],
        "std_ddof": 0,
        "partitions": {},
    }
    corpus_report = manifest.get("corpus_report") or {}
    for key in ("recordings_sharing_features", "shared_across_partitions"):
        if corpus_report.get(key):
            stats[key] = corpus_report[key]
    for partition, info in manifest["partitions"].items():
        stats["partitions"][partition] = partition_statistics(artifact_dir, partition, info, bar=bar)
    write_json_atomic(path, stats)
    write_text_atomic(path.with_suffix(".txt"), format_statistics(stats))
    return stats


def format_statistics(stats: dict) -> str:
    lines = ["Data statistics (std with ddof=0; features over frames where the modality is present)", ""]
    for partition, part in stats["partitions"].items():
        lines.append(f"{partition}: {part['num_recordings']} recordings, {part['num_frames']} frames")
        for modality in features.MODALITIES:
            entry = part[modality]
            means = [m for m in entry["mean"] if m is not None]
            stds = [s for s in entry["std"] if s is not None]
            lines.append(
                f"  {modality}: dims {entry['dims_seen']}, {entry['absent_frames']} absent frames, "
                f"mean of means {np.mean(means) if means else float('nan'):.4g}, "
                f"mean std {np.mean(stds) if stds else float('nan'):.4g}, "
                f"NaN {sum(entry['nan_count'])}, Inf {sum(entry['inf_count'])}"
            )
        for key, entry in part.get("labels", {}).items():
            mean = "n/a" if entry["mean"] is None else f"{entry['mean']:.4f}"
            std = "n/a" if entry["std"] is None else f"{entry['std']:.4f}"
            lines.append(
                f"  {key} ({entry['unit']}s): n={entry['count']} mean {mean} std {std} "
                f"bins neg/neu/pos {entry['class_counts']}"
            )
        lines.append("")
    groups = stats.get("recordings_sharing_features", [])
    if groups:
        lines.append(f"Recordings sharing features ({len(groups)} groups; accepted, e.g. a conversation's partners):")
        for group in groups:
            lines.append(f"  {group['partition']}: {', '.join(group['recordings'])} ({', '.join(group['folders'])})")
        lines.append("")
    pairs = stats.get("shared_across_partitions", [])
    if pairs:
        lines.append(f"Feature files shared between partitions ({len(pairs)}; possible leakage):")
        lines += [f"  {first} = {second}" for first, second in pairs]
        lines.append("")
    return "\n".join(lines)
