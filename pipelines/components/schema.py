"""SchemaGen: what every partition must look like, inferred from the manifest and the train split.

Written to `schema.json`: feature dimensions and names, hop, label range [-1, 1], whether labels are
sequence-level, the class threshold and which partitions are labelled.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.components.statistics import LABEL_RANGE
from pipelines.core.io_utils import write_json_atomic
from pipelines.data import features, records

FORMAT_VERSION = 1
SCHEMA = "schema.json"


def infer_schema(artifact_dir) -> dict:
    """SchemaGen: the expected form of every partition, from the manifest and the train split."""
    manifest = records.load_manifest(artifact_dir)
    train = manifest["partitions"].get(features.TRAIN, {})
    schema = {
        "format_version": FORMAT_VERSION,
        "hop": manifest["hop"],
        features.AUDIO: {"dim": manifest["audio_dim"], "names": manifest["audio_feature_names"]},
        features.VISUAL: {"dim": manifest["visual_dim"], "names": manifest["visual_feature_names"]},
        "labels": {key: {"min": LABEL_RANGE[0], "max": LABEL_RANGE[1]} for key in features.LABEL_KEYS},
        "sequence_level": bool(train.get("sequence_level", False)),
        "class_threshold": features.CLASS_THRESHOLD,
        "partitions": {p: {"labelled": bool(part["labelled"])} for p, part in manifest["partitions"].items()},
    }
    write_json_atomic(Path(artifact_dir) / SCHEMA, schema)
    return schema
