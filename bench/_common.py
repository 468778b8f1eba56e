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
