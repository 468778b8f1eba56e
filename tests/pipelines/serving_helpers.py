"""A tiny trained run and its export, made once per test process for the export and serving tests."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.config import merging

TINY = {
    "synthetic": {
        "seed": 5,
        "num_train": 3,
        "num_devel": 2,
        "num_test": 1,
        "duration_seconds": 12.0,
        "audio_dim": 5,
        "visual_dim": 7,
    },
    "model": {"name": "cold_fusion", "gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}
MODEL_NAME = "cold_tiny"

_CACHE = {}


def tiny_run(root: Path) -> Path:
    """Trains the tiny cold_fusion run under `root` (once per process) and returns its run directory."""
    if "run" not in _CACHE:
        from pipelines.config import files as config_lib
        from pipelines.training import train

        config = merging.deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
        config["dataset"] = "synthetic"
        config = config_lib.validate(config, "tiny test config")
        previous = os.environ.get("COLD_KERAS_CACHE")
        os.environ["COLD_KERAS_CACHE"] = str(root / "cache")
        try:
            train.run(config, root / "run", progress=False)
        finally:
            if previous is None:
                os.environ.pop("COLD_KERAS_CACHE", None)
            else:
                os.environ["COLD_KERAS_CACHE"] = previous
        _CACHE["run"] = root / "run"
    return _CACHE["run"]


def tiny_export(root: Path) -> Path:
    """Exports the tiny run (with the full check) to `<root>/saved_models/cold_tiny/1` once per process."""
    if "export" not in _CACHE:
        from pipelines.serving import export

        run_dir = tiny_run(root)
        _CACHE["export"] = export.run(run_dir, MODEL_NAME, base_dir=root / "saved_models")
    return _CACHE["export"]
