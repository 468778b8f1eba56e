"""Shared pieces of the benchmarks."""

import numpy as np

from pipelines.config import merging


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
    from pipelines.config import files as config_lib
    from pipelines.training import train

    config = merging.deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), overrides)
    config["training"]["seed"] = seed
    if epochs:
        config["training"]["epochs"] = epochs
    train.run(config_lib.validate(config), run_dir, progress=False)


def load_run(run_dir, partition):
    """(inference model, recordings of `partition`) of a finished run directory."""
    import keras

    from cold_keras.models import inference_model
    from pipelines.components import input_pipeline
    from pipelines.core.io_utils import read_json

    artifact_dir = read_json(run_dir / "config.json")["runtime"]["artifact_dir"]
    model = keras.saving.load_model(run_dir / "model.keras")
    return inference_model(model), list(input_pipeline.iter_recordings(artifact_dir, partition))


def training_frames_per_second(model, batch, steps, repeats):
    """Trains `model` (compiled) on one repeated batch; frames per second of each timed epoch.

    Epoch 1 is warm-up (tracing, allocation); `repeats` epochs of `steps` steps are timed.
    """
    import time

    import keras
    import tensorflow as tf

    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    dataset = tf.data.Dataset.from_tensors((batch,)).repeat()
    model.fit(dataset, epochs=1 + repeats, steps_per_epoch=steps, verbose=0, callbacks=[Timer()])
    frames_per_step = batch["mask"].size
    return [steps * frames_per_step / s for s in seconds[1:]]
