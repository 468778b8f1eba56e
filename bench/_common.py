"""Shared pieces of the benchmarks."""

import numpy as np


def random_batch(batch_size, frames, audio_dim, visual_dim, seed=0):
    """One training batch of the batch contract (features and targets) with random values."""
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch_size, frames, audio_dim)).astype("float32"),
        "visual": rng.standard_normal((batch_size, frames, visual_dim)).astype("float32"),
        "mask": np.ones((batch_size, frames), "float32"),
        "valence": rng.uniform(-1, 1, (batch_size, frames)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (batch_size, frames)).astype("float32"),
    }


def random_raw_batch(batch_size, frames, face_shape, patch_shape, seed=0):
    """One raw-mode training batch: face crops (0..255), log-mel patches, mask and targets."""
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch_size, frames) + tuple(patch_shape)).astype("float32"),
        "visual": rng.uniform(0, 255, (batch_size, frames) + tuple(face_shape)).astype("float32"),
        "mask": np.ones((batch_size, frames), "float32"),
        "valence": rng.uniform(-1, 1, (batch_size, frames)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (batch_size, frames)).astype("float32"),
    }


def train_synthetic(overrides, seed, epochs, run_dir):
    """Trains (or resumes, or reuses) one run on the synthetic corpus: configs/synthetic.yaml
    updated with `overrides`, the seed and, when given, the number of epochs."""
    from pipelines import config as config_lib
    from pipelines import train

    config = config_lib.deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), overrides)
    config["training"]["seed"] = seed
    if epochs:
        config["training"]["epochs"] = epochs
    train.run(config_lib.validate(config), run_dir, progress=False)


def load_run(run_dir, partition):
    """(inference model, recordings of `partition`) of a finished run directory."""
    import keras

    from cold_keras.models import inference_model
    from pipelines import input_pipeline
    from pipelines.io_utils import read_json

    artifact_dir = read_json(run_dir / "config.json")["runtime"]["artifact_dir"]
    model = keras.saving.load_model(run_dir / "model.keras")
    return inference_model(model), list(input_pipeline.iter_recordings(artifact_dir, partition))
