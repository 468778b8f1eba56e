"""Transform: z-normalisation statistics fitted on the train partition only.

For each modality and feature: mean and variance (ddof=0) over the train frames where the
modality is present, accumulated in float64 one recording at a time. Written to
`transform.json`; the model applies them with `keras.layers.Normalization(mean=..., variance=...)`
(`build_model(..., audio_norm=..., visual_norm=...)`), so the input pipeline feeds raw features and
an exported model carries its own normalisation. A feature with no train value gets mean 0 and
variance 1; a constant one keeps variance 0 (Normalization divides by max(std, epsilon)).

    python -m pipelines.transform --artifact-dir OUT
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.components.statistics import MomentAccumulator, data_key
from pipelines.core import cli
from pipelines.core.errors import DataError
from pipelines.core.io_utils import read_current_json, read_json, write_json_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features, records

FORMAT_VERSION = 1
TRANSFORM = "transform.json"


def fit_normalization(artifact_dir, partition=features.TRAIN, bar=False) -> dict:
    """Streams a partition and returns {modality: MomentAccumulator} over its present frames;
    `bar`: a progress bar."""
    info = records.partition_info(artifact_dir, partition)
    moments = {m: MomentAccumulator(info[f"{m}_dim"]) for m in features.MODALITIES}
    recordings = cli.progress_bar(
        records.iter_recordings(artifact_dir, partition),
        f"transform {partition}",
        total=info.get("num_recordings"),
        enabled=bar,
    )
    for recording in recordings:
        for modality in features.MODALITIES:
            present = recording[records.PRESENT_KEYS[modality]] > 0
            moments[modality].update(recording[modality][present])
    for modality, acc in moments.items():
        bad = int(acc.nan_count.sum() + acc.inf_count.sum())
        if bad:
            raise DataError(
                f"{bad} NaN/Inf {modality} values in the {partition} partition; see anomalies.txt "
                f"(python -m pipelines.statistics_gen)",
                Path(artifact_dir) / records.MANIFEST,
            )
    return moments


def run(artifact_dir, progress=False, bar=None) -> dict:
    """Fits the normalisation on train and writes `transform.json` (reused while the shards are unchanged).

    Returns:
        dict: the content of `transform.json`: per modality `mean`, `variance` (lists of D floats),
        `count` (train frames with the modality present) and `names`.
    """
    manifest = records.load_manifest(artifact_dir)
    key = data_key(manifest)
    path = Path(artifact_dir) / TRANSFORM
    old = read_current_json(path, key, FORMAT_VERSION)
    if old is not None:
        return old
    if features.TRAIN not in manifest["partitions"]:
        raise DataError("no train partition to fit the normalisation on", Path(artifact_dir) / records.MANIFEST)
    moments = fit_normalization(artifact_dir, bar=progress if bar is None else bar)
    pause_point("transform.fitted")
    out = {"format_version": FORMAT_VERSION, "data_key": key, "fitted_on": features.TRAIN, "variance_ddof": 0}
    for modality, acc in moments.items():
        defined = acc.count > 0
        out[modality] = {
            "names": manifest[f"{modality}_feature_names"],
            "count": int(acc.count.max(initial=0)),
            "mean": np.where(defined, acc.mean, 0.0).tolist(),
            "variance": np.where(defined, acc.variance, 1.0).tolist(),
        }
    write_json_atomic(path, out)
    if progress:
        print(f"transform: wrote {path}")
    return out


def load_normalization(artifact_dir) -> dict:
    """{"audio": (mean, variance), "visual": (mean, variance)} float32 arrays from `transform.json`.

    Pass them to `cold_keras.models.build_model` as `audio_norm` / `visual_norm`.

    Raises:
        DataError: the file is missing, unreadable, or older than the shards.
    """
    path = Path(artifact_dir) / TRANSFORM
    if not path.is_file():
        raise DataError(f"no transform.json: run `python -m pipelines.transform --artifact-dir {artifact_dir}`", path)
    try:
        data = read_json(path)
        norms = {
            m: (np.asarray(data[m]["mean"], np.float32), np.asarray(data[m]["variance"], np.float32))
            for m in features.MODALITIES
        }
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"unreadable transform file ({error})", path) from error
    manifest = records.load_manifest(artifact_dir)
    if data.get("data_key") != data_key(manifest):
        raise DataError(
            "transform.json was fitted on other shards than manifest.json lists; run "
            f"`python -m pipelines.transform --artifact-dir {artifact_dir}` again",
            path,
        )
    for modality in features.MODALITIES:
        mean, variance = norms[modality]
        if mean.shape != (manifest[f"{modality}_dim"],) or variance.shape != mean.shape:
            raise DataError(
                f"{modality} normalisation has {mean.shape[0]} features, the data {manifest[f'{modality}_dim']}", path
            )
    return norms
