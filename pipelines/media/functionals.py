"""Per-frame functionals of low-level descriptors, as AVEC 2019's `generate_functionals.py` computes them.

For a stream of `n` LLD rows at `fps` rows per second, output row t = 0, 1, 2, ... is centred on
LLD row c = int(t * fps * hop) (hop 0.1 s) and summarises the window of rows
[max(0, c - h), min(n, c + h + 1)), h = int(window_seconds * fps / 2) (window_seconds 4.0, so
h = 200 at 100 Hz): the mean of every LLD, then the standard deviation (ddof 0) of every LLD. Rows
stop at the first t whose window is empty or whose centre lies past the end (c > n). The output
timestamp of row t is t * hop.

`functionals` computes exactly that (the full-width windows vectorised, the edge windows one by
one); `masked_functionals` computes the same windows over the rows marked present only (OpenFace
frames where the face was tracked), and marks a row absent when its window holds no present row.
"""

from __future__ import annotations

import numpy as np

HOP = 0.1
WINDOW_SECONDS = 4.0
_CHUNK = 64  # full windows summarised at once (bounds the memory of the windowed copy)


def centres(n: int, fps: float, hop: float = HOP, window_seconds: float = WINDOW_SECONDS):
    """(centre rows c [T], half width h) of the output rows of a stream of `n` rows at `fps`."""
    half = int(window_seconds * fps / 2)
    if n <= 0:
        return np.zeros(0, np.int64), half
    # int(t * fps * hop) evaluated as AVEC's script does: ((t * fps) * hop) in float64, truncated.
    # The rows go on while c <= n (the window [c - h, n) is never empty then, n > 0).
    count = int(n / (fps * hop)) + 3
    t = np.arange(count, dtype=np.float64)
    c = (t * float(fps) * float(hop)).astype(np.int64)
    return c[c <= n], half


def functionals(values: np.ndarray, fps: float, hop: float = HOP, window_seconds: float = WINDOW_SECONDS):
    """(timestamps [T], features [T, 2 * D]): the window means of the D LLDs, then their standard deviations."""
    values = np.asarray(values, np.float64)
    n, dim = values.shape
    c, half = centres(n, fps, hop, window_seconds)
    out = np.zeros((len(c), 2 * dim), np.float64)
    lo = np.maximum(0, c - half)
    hi = np.minimum(n, c + half + 1)
    full = (c - half >= 0) & (c + half + 1 <= n)
    width = 2 * half + 1
    rows = np.flatnonzero(full)
    if len(rows) and n >= width:
        windows = np.lib.stride_tricks.sliding_window_view(values, width, axis=0)  # [n - w + 1, D, w]
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            block = windows[lo[chunk]]  # a copy [K, D, w]
            out[chunk, :dim] = block.mean(axis=2)
            out[chunk, dim:] = block.std(axis=2)
    for i in np.flatnonzero(~full):
        window = values[lo[i] : hi[i]]
        out[i, :dim] = window.mean(axis=0)
        out[i, dim:] = window.std(axis=0)
    return np.arange(len(c)) * hop, out


def masked_functionals(
    values: np.ndarray, present: np.ndarray, fps: float, hop: float = HOP, window_seconds: float = WINDOW_SECONDS
):
    """(timestamps [T], features [T, 2 * D], present [T] uint8) over the present rows of each window.

    A row whose window holds no present row is absent: its features are 0 and its flag 0.
    """
    values = np.asarray(values, np.float64)
    present = np.asarray(present, bool)
    n, dim = values.shape
    c, half = centres(n, fps, hop, window_seconds)
    out = np.zeros((len(c), 2 * dim), np.float64)
    flags = np.zeros(len(c), np.uint8)
    for i, centre in enumerate(c):
        lo, hi = max(0, centre - half), min(n, centre + half + 1)
        window = values[lo:hi][present[lo:hi]]
        if len(window):
            out[i, :dim] = window.mean(axis=0)
            out[i, dim:] = window.std(axis=0)
            flags[i] = 1
    return np.arange(len(c)) * hop, out, flags


def names(lld_names) -> list:
    """Feature names of the functionals: `<lld>_mean` for every LLD, then `<lld>_std`."""
    return [f"{name}_mean" for name in lld_names] + [f"{name}_std" for name in lld_names]
