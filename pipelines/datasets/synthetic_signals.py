"""Random signals of the synthetic corpora: smooth label curves and corrupted stretches.

Shared by the simple (`synthetic`) and the realistic (`synthetic_realistic`) generators.
"""

from __future__ import annotations

import numpy as np

# Length range of one corrupted stretch, seconds.
SEGMENT_SECONDS = (2.0, 8.0)
MAX_SHARED = 0.2  # largest fraction of a visual stretch that may overlap corrupted audio


def smooth_signals(rng, n: int, sigma_frames: float, count: int) -> np.ndarray:
    """`count` standardised smooth random signals of length n: white noise convolved with a Gaussian."""
    radius = int(np.ceil(3 * sigma_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma_frames, 1e-9)) ** 2)
    kernel /= kernel.sum()
    noise = rng.standard_normal((count, n + 2 * radius))
    smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in noise])
    smooth -= smooth.mean(axis=1, keepdims=True)
    return smooth / np.maximum(smooth.std(axis=1, keepdims=True), 1e-9)


def corruption_segments(rng, n: int, target: int, min_len: int, max_len: int, kinds, avoid=None):
    """Non-touching stretches covering `target` frames; with `avoid`, each shares <= MAX_SHARED with it."""
    flags = np.zeros(n, bool)
    segments, covered = [], 0
    for _ in range(2000):
        if covered >= target:
            break
        length = int(min(rng.integers(min_len, max_len + 1), target - covered))
        start = int(rng.integers(0, n - length + 1))
        end = start + length
        if flags[max(start - 1, 0) : min(end + 1, n)].any():
            continue
        if avoid is not None and avoid[start:end].mean() > MAX_SHARED:
            continue
        flags[start:end] = True
        segments.append((start, end, str(kinds[int(rng.integers(len(kinds)))])))
        covered += length
    return sorted(segments), flags
