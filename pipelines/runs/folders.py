"""A run directory, as the trainer leaves it: its config, its model and its data artefacts.

The evaluator, the exporter, the predictor and the uncertainty fit all open runs through this module.
TensorFlow (and the model) load only inside `load_inference_model`, so argument errors come first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipelines.config.settings import as_run_config, resolve_saved
from pipelines.core.errors import DataError
from pipelines.core.io_utils import read_json
from pipelines.data import features


def load_inference_model(run_dir):
    """The inference model of a run directory and the run's resolved config.

    Returns:
        (keras.Model taking `audio`, `visual`, `mask`; the RunConfig of `config.json`).

    Raises:
        DataError: the run directory, its `config.json` or its `model.keras` is missing or unreadable.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    model_path = run_dir / "model.keras"
    if not run_dir.is_dir():
        raise DataError("run directory not found", run_dir)
    for path in (config_path, model_path):
        if not path.is_file():
            raise DataError(
                "not found: train a model into this run directory first "
                "(python -m pipelines.train ... --output-dir RUN)",
                path,
            )
    try:
        config = resolve_saved(read_json(config_path), config_path)
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg})", config_path, error.lineno, error.colno) from None

    import keras

    import cold_keras  # noqa: F401 - registers the custom layers that model.keras refers to
    from cold_keras.models import inference_model

    try:
        training_model = keras.saving.load_model(str(model_path), compile=False)
    except (ValueError, OSError, TypeError) as error:
        raise DataError(f"cannot load the model ({str(error).splitlines()[0]})", model_path) from None
    return inference_model(training_model), config


def artifact_dir_of(config, run_dir) -> Path:
    """The data artefact directory the run was trained on (`runtime.artifact_dir` of config.json)."""
    path = (as_run_config(config).runtime or {}).get("artifact_dir")
    if not path or not (Path(path) / "manifest.json").is_file():
        from pipelines.runs import prepare

        if not path:
            raise DataError(
                "records no data artefact folder (runtime.artifact_dir); rebuild it with "
                f"{prepare.rebuild_command(run_dir)}",
                Path(run_dir) / "config.json",
            )
        print(f"the run's data artefacts ({path}) are missing", file=sys.stderr)
        return prepare.rebuild_run_artifacts(run_dir)
    return Path(path)


DEFAULT_HOP = 0.1


def trained_hop(config) -> float:
    """The frame hop in seconds a run was trained at (`runtime.hop` of its config.json); a run saved
    before the trainer recorded it counts as the default 0.1 s."""
    hop = (as_run_config(config).runtime or {}).get("hop")
    return DEFAULT_HOP if hop is None else float(hop)


def open_run(run_dir):
    """Checks a run directory; returns (config: RunConfig, artifact_dir, manifest). Raises DataError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("run directory not found", run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DataError(
            "not a run directory (no config.json); train one with python -m pipelines.train ... --output-dir RUN",
            run_dir,
        )
    if not (run_dir / "model.keras").is_file():
        raise DataError(
            "the run has not finished (no model.keras yet); run the same training command again to resume it", run_dir
        )
    try:
        config = resolve_saved(read_json(config_path), config_path)
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", config_path) from None
    artifact_dir = artifact_dir_of(config, run_dir)
    return config, artifact_dir, read_json(artifact_dir / "manifest.json")


def training_delay_frames(config, artifact_dir) -> int:
    """`training.label_delay_seconds` in frames of the run's data (`pipelines.data.label_delay`)."""
    from pipelines.data import label_delay, records

    seconds = label_delay.seconds_of(as_run_config(config))
    if not seconds:
        return 0
    return label_delay.delay_frames(seconds, records.partition_info(artifact_dir, features.TRAIN)["hop"])
