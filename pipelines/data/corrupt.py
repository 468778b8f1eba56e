"""Corrupting one modality of whole recordings in consecutive blocks (paper Table 7).

Used by the evaluator's `--corrupt visual:0.5` and by the benchmarks. On a raw-mode run the
visual frames are face crops, and the default corruption is the paper's face masking
(`face_mask`: a mask over the lower half of the face); the other modes work on raw inputs too.
"""

from __future__ import annotations

import numpy as np

from pipelines.core.errors import ConfigError
from pipelines.data import features

FEATURE_MODES = ("noise", "zeros", "swap")  # work on any input, features or raw
# Corruptions that stay inside the clean data's range (feature inputs, as in the realistic synthetic corpus).
IN_RANGE_MODES = ("frozen", "drift", "desync", "dropout")
DESYNC_SECONDS = (2.0, 5.0)
DRIFT_STD = 1.5
MODES = FEATURE_MODES + ("face_mask",) + IN_RANGE_MODES  # face_mask: the face crops of a raw-mode run only


def default_mode(modality: str, raw: bool) -> str:
    """`face_mask` for the faces of a raw-mode run, `noise` otherwise."""
    return "face_mask" if raw and modality == features.VISUAL else "noise"


def parse_spec(spec: str):
    """Parses `visual:0.5` into ("visual", 0.5); raises ConfigError on anything else."""
    try:
        modality, fraction = spec.split(":")
        fraction = float(fraction)
    except ValueError:
        raise ConfigError(f"--corrupt takes MODALITY:FRACTION, e.g. visual:0.5; got {spec!r}") from None
    if modality not in features.MODALITIES:
        raise ConfigError(f"--corrupt modality must be audio or visual, got {modality!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"--corrupt fraction must be in [0, 1], got {fraction}")
    return modality, fraction


def parse_corruption(spec: str, option: str = "--fit-corrupt"):
    """Parses `visual:0.5:dropout` (mode optional, default noise) into ("visual", 0.5, "dropout")."""
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"{option} takes MODALITY:FRACTION[:MODE], e.g. visual:0.5:dropout; got {spec!r}")
    modality, fraction = parse_spec(":".join(parts[:2]))
    mode = parts[2] if len(parts) == 3 else "noise"
    if mode not in MODES or mode == "face_mask":
        raise ConfigError(
            f"{option} mode must be one of {', '.join(m for m in MODES if m != 'face_mask')}, got {mode!r} in {spec!r}"
        )
    return modality, fraction, mode


def block_mask(num_frames: int, fraction: float, rng: np.random.Generator, num_blocks: int = 4) -> np.ndarray:
    """A bool mask with round(fraction * num_frames) True frames in up to `num_blocks` runs.

    The frames are split into `num_blocks` equal segments and each segment gets one run of its
    share of corrupted frames at a random offset, so corruption is spread over the recording
    but consecutive, like an occlusion or a noise burst.
    """
    mask = np.zeros(num_frames, bool)
    total = int(round(fraction * num_frames))
    if total == 0:
        return mask
    num_blocks = max(1, min(num_blocks, total))
    bounds = np.linspace(0, num_frames, num_blocks + 1).astype(int)
    shares = np.diff(np.linspace(0, total, num_blocks + 1).round().astype(int))
    for start, end, share in zip(bounds[:-1], bounds[1:], shares):
        length = end - start
        share = min(share, length)
        offset = start + int(rng.integers(0, length - share + 1))
        mask[offset : offset + share] = True
    return mask


def corrupt_recordings(
    recordings,
    modality: str,
    fraction: float,
    *,
    mode: str = "noise",
    seed: int = 0,
    noise_scale: float = 3.0,
    hop: float = 0.1,
):
    """Returns copies of `recordings` with `fraction` of `modality`'s frames corrupted.

    Args:
        recordings: list of dicts from `input_pipeline.iter_recordings`.
        modality: "audio" or "visual".
        fraction: float in [0, 1].
        mode: "noise" (Gaussian noise, `noise_scale` times each feature's standard deviation in
            the recording, replaces the frame; face crops stay within 0..255), "zeros" (frames
            zeroed), "swap" (frames taken from another recording of the list, same positions
            modulo its length), or "face_mask" (raw face crops only: a mask drawn over the lower
            half of the face, `pipelines.data.raw_inputs.mask_lower_face`); or one of the in-range
            corruptions of feature inputs: "frozen" (the first frame of each block repeated),
            "drift" (an offset growing linearly over each block to 1.5 standard deviations of the
            recording, in a random direction per feature, clipped to the recording's range),
            "desync" (each block replaced by the frames 2-5 s earlier, later at the start) or
            "dropout" (each block set to the recording's mean frame).
        seed: int. Same seed, same blocks.
        noise_scale: float. Spread of the "noise" mode. Defaults to 3.0.
        hop: float. Frame hop in seconds (the "desync" shift). Defaults to 0.1.

    Each returned dict gets `<modality>_corrupted_eval`: the bool mask of the corrupted frames.
    """
    if mode not in MODES:
        raise ConfigError(f"--corrupt-mode must be one of {', '.join(MODES)}, got {mode!r}")
    rng = np.random.default_rng(seed)
    recordings = list(recordings)
    out = []
    for index, recording in enumerate(recordings):
        values = np.array(recording[modality], np.float32, copy=True)
        faces = values.ndim == 4  # raw face crops [N, H, W, 3]
        if mode == "face_mask" and not (faces and modality == features.VISUAL):
            raise ConfigError("--corrupt-mode face_mask needs the face crops of a raw-mode run (--corrupt visual:...)")
        mask = block_mask(len(values), fraction, rng)
        if mode in IN_RANGE_MODES:
            if faces:
                raise ConfigError(f"--corrupt-mode {mode} works on feature inputs, not on raw face crops")
            values = corrupt_in_range(values, mask, mode, rng, hop)
        elif mode == "face_mask":
            from pipelines.data import raw_inputs

            values = raw_inputs.mask_lower_face(values, mask)
        elif mode == "noise":
            scale = values.std(axis=0, keepdims=True) * noise_scale + 1e-6
            noise = rng.standard_normal((int(mask.sum()),) + values.shape[1:]) * scale
            if faces:
                noise = np.clip(noise + values.mean(), 0, 255)
            values[mask] = noise.astype(np.float32)
        elif mode == "zeros":
            values[mask] = 0.0
        else:
            donor = recordings[(index + 1) % len(recordings)][modality] if len(recordings) > 1 else values[::-1]
            positions = np.flatnonzero(mask) % len(donor)
            values[mask] = np.asarray(donor, np.float32)[positions]
        out.append({**recording, modality: values, f"{modality}_corrupted_eval": mask})
    return out


def _runs(mask: np.ndarray):
    """(start, end) of every run of True in a bool mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def corrupt_in_range(
    values: np.ndarray, mask: np.ndarray, mode: str, rng: np.random.Generator, hop: float = 0.1
) -> np.ndarray:
    """`values` [N, D] with every run of `mask` corrupted by one of `IN_RANGE_MODES` (see
    `corrupt_recordings`); the statistics come from the uncorrupted input. Returns a new array."""
    clean = np.asarray(values, np.float32)
    out = clean.copy()
    n = len(clean)
    mean, spread = clean.mean(axis=0), clean.std(axis=0)
    low, high = clean.min(axis=0), clean.max(axis=0)
    for start, end in _runs(mask):
        if mode == "frozen":
            out[start:end] = clean[start]
        elif mode == "dropout":
            out[start:end] = mean
        elif mode == "drift":
            direction = rng.choice([-1.0, 1.0], clean.shape[1]) * rng.uniform(0.5, 1.0, clean.shape[1])
            ramp = np.linspace(0.0, 1.0, end - start)[:, None]
            out[start:end] = np.clip(clean[start:end] + ramp * DRIFT_STD * spread * direction, low, high)
        elif mode == "desync":
            shift = max(1, int(round(rng.uniform(*DESYNC_SECONDS) / hop)))
            source = np.arange(start, end) - shift
            if source[0] < 0:
                source = np.arange(start, end) + shift
            out[start:end] = clean[np.clip(source, 0, n - 1)]
        else:
            raise ConfigError(f"not an in-range corruption: {mode!r}; choose one of {', '.join(IN_RANGE_MODES)}")
    return out
