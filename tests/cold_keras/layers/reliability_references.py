"""NumPy references of the atypicality signals (`cold_keras.layers.reliability`), by loops."""

import numpy as np


def moving_average(x, mask, radius):
    """Moving average of [B, T, F] over the real frames within +-radius."""
    out = np.zeros_like(x, dtype=np.float64)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            lo, hi = max(0, t - radius), min(x.shape[1], t + radius + 1)
            weights = mask[b, lo:hi]
            out[b, t] = (x[b, lo:hi] * weights[:, None]).sum(0) / max(weights.sum(), 1.0)
    return out


def atypicality_signals(z, mask, radius=10):
    """[B, T, 3] smoothed level, motion and spread of standardised features z [B, T, D]."""
    z = np.asarray(z, np.float64)
    mask = np.asarray(mask, np.float64)
    level = np.log1p((z**2).mean(-1))
    previous = np.concatenate([z[:, :1], z[:, :-1]], axis=1)
    motion = np.log(0.01 + ((z - previous) ** 2).mean(-1))
    local = moving_average(z, mask, radius)
    spread = np.log(0.01 + moving_average(((z - local) ** 2).mean(-1, keepdims=True), mask, radius))
    smoothed = moving_average(np.stack([level, motion], -1), mask, radius)
    return np.concatenate([smoothed, spread], -1) * mask[..., None]
