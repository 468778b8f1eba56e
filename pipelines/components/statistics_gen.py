"""StatisticsGen, SchemaGen and ExampleValidator over ExampleGen's shards.

`run(artifact_dir)` runs the three in order and writes, next to `manifest.json`:

* `statistics.json` (+ `statistics.txt`): per partition, modality, feature and label, the moments,
  NaN/Inf counts and class bins (`pipelines.components.statistics`).
* `schema.json`: what the data must look like, inferred from the manifest and the train
  statistics (`pipelines.components.schema`).
* `anomalies.json` (+ `anomalies.txt`): every partition checked against the schema, blocking
  anomalies and warnings (`pipelines.components.anomalies`).

`check_anomalies(artifact_dir)` raises a one-line DataError when anything is blocking.

    python -m pipelines.statistics_gen --artifact-dir OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.components.anomalies import (
    ANOMALIES,
    BLOCKING,
    DEFAULT_SHIFT_FRACTION,
    DEFAULT_SHIFT_THRESHOLD,
    WARNING,
    format_anomalies,
    validate,
)
from pipelines.components.schema import infer_schema
from pipelines.components.statistics import compute_statistics
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json, write_json_atomic, write_text_atomic
from pipelines.core.pause import pause_point

FORMAT_VERSION = 1


def run(
    artifact_dir,
    *,
    shift_threshold=DEFAULT_SHIFT_THRESHOLD,
    shift_fraction=DEFAULT_SHIFT_FRACTION,
    progress=False,
    bar=None,
) -> dict:
    """Runs StatisticsGen, SchemaGen and ExampleValidator; returns the anomaly report.

    Args:
        artifact_dir: str or Path. ExampleGen's output folder.
        shift_threshold: float. Mean shift, in train standard deviations, that counts a feature
            as shifted. Defaults to 1.
        shift_fraction: float in [0, 1]. Share of shifted features above which a partition gets a
            distribution-shift warning. Defaults to 0.25.
        progress: bool. Print the summary.
        bar: bool. Progress bars while reading the partitions (default: `progress`).

    Returns:
        dict: the content of `anomalies.json`.
    """
    if not shift_threshold > 0 or not 0 <= shift_fraction <= 1:
        raise ConfigError(
            f"shift_threshold must be > 0 and shift_fraction in [0, 1], got {shift_threshold!r} and {shift_fraction!r}"
        )
    statistics = compute_statistics(artifact_dir, bar=progress if bar is None else bar)
    pause_point("statistics.computed")
    schema = infer_schema(artifact_dir)
    anomalies = validate(statistics, schema, shift_threshold=shift_threshold, shift_fraction=shift_fraction)
    report = {
        "format_version": FORMAT_VERSION,
        "data_key": statistics["data_key"],
        "thresholds": {"shift_threshold": shift_threshold, "shift_fraction": shift_fraction},
        "num_blocking": sum(a["severity"] == BLOCKING for a in anomalies),
        "num_warnings": sum(a["severity"] == WARNING for a in anomalies),
        "anomalies": anomalies,
    }
    path = Path(artifact_dir) / ANOMALIES
    write_json_atomic(path, report)
    text = format_anomalies(report)
    write_text_atomic(path.with_suffix(".txt"), text)
    if progress:
        print(text, end="", file=sys.stderr)
    return report


def check_anomalies(artifact_dir) -> dict:
    """Raises a one-line DataError if `anomalies.json` lists anything blocking; returns the report."""
    path = Path(artifact_dir) / ANOMALIES
    if not path.is_file():
        raise DataError(
            f"no anomalies.json: run `python -m pipelines.statistics_gen --artifact-dir {artifact_dir}`", path
        )
    try:
        report = read_json(path)
        blocking = [a for a in report["anomalies"] if a["severity"] == BLOCKING]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"unreadable anomaly report ({error})", path) from error
    if blocking:
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        raise DataError(
            f"blocking data anomaly: {blocking[0]['message']}{more}; see {path.with_suffix('.txt').name}", path
        )
    return report
