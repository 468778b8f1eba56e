"""Training-time augmentation of one window: feature noise, time masking, modality dropout, corruption.

Configured by a dict; a key missing or set to None switches that augmentation off:

* `noise_std`: float >= 0. Gaussian noise added to every real frame of both modalities, in units
  of each feature's train standard deviation (`scale` below), so one value suits raw features of
  any range. Padded frames stay zero.
* `time_mask_frames`: int >= 1. SpecAugment time masking (`tensorflow_io.audio.time_mask`) applied
  to each modality independently: a stretch of t ~ U[0, time_mask_frames) frames is zeroed.
* `modality_dropout_prob`: float in [0, 1]. Probability that one window loses one modality (chosen
  at random) for a stretch of frames: its features are zeroed and its presence flag set to 0 there
  (the mask is left alone), so the model learns to fuse with a modality missing, as at inference
  with `audio_present` / `visual_present` = 0.
* `modality_dropout_frames`: int >= 1. Longest such stretch (length ~ U[1, this]). Defaults to
  the whole window.
* `corrupt_prob`: float in [0, 1]. Probability, per window and per modality independently, that a
  stretch of the modality's frames is corrupted while its presence flag stays 1: the features are
  replaced by Gaussian noise (`corrupt_scale` train standard deviations around the train mean) or,
  with equal probability, by a nearly constant frame (the train mean plus 1% noise; a frozen or
  occluded input). The model sees unreliable frames it is not told about, which is what the
  fusion weights should learn to detect.
* `corrupt_frames`: int >= 1. Longest corrupted stretch (length ~ U[1, this]). Defaults to half
  the window.
* `corrupt_scale`: float > 0. Standard deviation of the corrupting noise in train standard
  deviations. Defaults to 3.0 (as the evaluator's `--corrupt` noise).
* `corrupt_kinds`: list of corruption kinds a stretch is drawn from (uniformly), so a run can hold
  kinds out. Default (null): `noise` and `dropout`, as described above. Kinds (`CORRUPT_KINDS`):
  `noise` (as above), `dropout` (the train mean plus 1% noise), `zeros` (zeroed features),
  `frozen` (the stretch's first frame held), `drift` (an offset growing linearly over the stretch
  to 1.5 train standard deviations, random direction per feature, clipped to the window's range),
  `desync` (the frames 2-5 s earlier, later at the window start) and `swap` (frames of the same
  window half a window away: realistic but wrong frames; the evaluator's `swap` takes another
  recording's).

The corrupted frames of each modality are returned under `<modality>_corruption_target` (bool
[T]) when `augment_window(..., targets=True)`: the ground truth of a supervised reliability loss
(`model.lambda_reliability`). They are loss targets only, never model inputs.

Order: noise first, then corruption, then the masks, so masked frames are exactly zero.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from pipelines.config.augmentation import (  # noqa: F401 - the augmentation keys live there, TensorFlow-free
    CORRUPT_KINDS,
    DEFAULT_CORRUPT_KINDS,
    DEFAULT_CORRUPT_SCALE,
    KEYS,
    check_mapping,
    check_number,
    validate_config,
)
from pipelines.core.errors import ConfigError
from pipelines.data import features


@functools.cache
def _tfio_audio():
    """`tensorflow_io.audio`, or None where the package is absent. Imported at the first unseeded mask,
    not with this module: it adds about 0.6 s to the start of every command. Only tensorflow-io's
    pure-Python ops load on current TensorFlow."""
    try:
        import tensorflow_io
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return tensorflow_io.audio


CORRUPTION_TARGET_KEYS = {modality: f"{modality}_corruption_target" for modality in features.MODALITIES}
DESYNC_SECONDS = (2.0, 5.0)
DRIFT_STD = 1.5


class Draws:
    """The random draws of one window's augmentation.

    With `seed` (an int tensor [2], e.g. (seed of the epoch, index of the window in it)) every draw
    is a stateless op on its own seed (`seed` folded with the draw's number), so a window's
    augmentation is a pure function of the seed: the same after a resume as in an uninterrupted
    run, whatever the parallelism. Without it, TensorFlow's stateful random ops.
    """

    def __init__(self, seed=None):
        self.seed = None if seed is None else tf.cast(seed, tf.int64)
        self.count = 0

    def _next(self):
        self.count += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        if maxval is None and not dtype.is_integer:
            maxval = 1
        if self.seed is None:
            return tf.random.uniform(shape, minval, maxval, dtype=dtype)
        return tf.random.stateless_uniform(shape, self._next(), minval, maxval, dtype=dtype)

    def normal(self, shape, stddev=1.0, dtype=tf.float32):
        if self.seed is None:
            return tf.random.normal(shape, stddev=stddev, dtype=dtype)
        return tf.random.stateless_normal(shape, self._next(), stddev=stddev, dtype=dtype)


def _draws(draws):
    return Draws() if draws is None else draws


def is_active(config) -> bool:
    config = validate_config(config)
    return any(config[key] for key in ("noise_std", "time_mask_frames", "modality_dropout_prob", "corrupt_prob"))


def _fallback_mask(values, param, axis, draws=None):
    """Zeros a stretch [s0, s0 + s) along `axis` (0 or 1) of [T, F] `values`: s ~ U[0, param),
    s0 ~ U[0, size - s); the same draws and the same form as tensorflow-io's masks."""
    draws = _draws(draws)
    values = tf.convert_to_tensor(values)
    size = tf.shape(values)[axis]
    length = draws.uniform((), 0, param, dtype=tf.int32)
    start = draws.uniform((), 0, size - length, dtype=tf.int32)
    indices = tf.reshape(tf.range(size), (-1, 1) if axis == 0 else (1, -1))
    condition = tf.logical_and(indices >= start, indices < start + length)
    return tf.where(condition, tf.cast(0, values.dtype), values)


def fallback_time_mask(values, param, draws=None):
    """`tensorflow_io.audio.time_mask` in plain TensorFlow: zeros frames [t0, t0 + t) of [T, D] `values`."""
    return _fallback_mask(values, param, axis=0, draws=draws)


def time_mask(values, param, draws=None):
    """Zeros a random stretch of fewer than `param` frames of [T, D] `values` (needs 1 <= param <= T).

    Seeded `draws` (`Draws`) use the plain-TensorFlow twin of tensorflow-io's mask, whose draws are stateless."""
    if (draws is None or draws.seed is None) and _tfio_audio() is not None:
        return _tfio_audio().time_mask(values, param=param)
    return fallback_time_mask(values, param, draws)


def fallback_freq_mask(values, param, draws=None):
    """`tensorflow_io.audio.freq_mask` in plain TensorFlow: zeros bins [f0, f0 + f) of [T, F] `values`."""
    return _fallback_mask(values, param, axis=1, draws=draws)


def freq_mask(values, param, draws=None):
    """Zeros fewer than `param` adjacent bins of a [T, F] spectrogram (needs 1 <= param <= F)."""
    if (draws is None or draws.seed is None) and _tfio_audio() is not None:
        return _tfio_audio().freq_mask(values, param=param)
    return fallback_freq_mask(values, param, draws)


def _stretch(window, longest, span=None, draws=None):
    """Bool [window]: one run of U[1, longest] consecutive frames at a uniform position in the
    first `span` frames (default: all; windows are right-padded, so span = the real frames)."""
    draws = _draws(draws)
    span = window if span is None else tf.maximum(span, 1)
    longest = tf.minimum(longest, span)
    length = draws.uniform((), 1, longest + 1, dtype=tf.int32)
    start = draws.uniform((), 0, span - length + 1, dtype=tf.int32)
    frames = tf.range(window)
    return tf.logical_and(frames >= start, frames < start + length)


def corrupt_window(values, mask, prob, longest, noise_scale, scale=None, center=None, draws=None):
    """With probability `prob`, replaces a stretch of [T, D] `values` by noise or a flat frame.

    Returns `(values, corrupted)` with `corrupted` the bool [T] frames that were replaced (real
    frames only).
    """
    draws = _draws(draws)
    window = tf.shape(values)[0]
    unit = tf.ones(tf.shape(values)[1:], values.dtype) if scale is None else tf.constant(scale, values.dtype)
    mean = tf.zeros(tf.shape(values)[1:], values.dtype) if center is None else tf.constant(center, values.dtype)
    apply = draws.uniform(()) < prob
    real = tf.reduce_sum(tf.cast(mask > 0, tf.int32))
    stretch = tf.logical_and(_stretch(window, longest, real, draws), apply)
    stretch = tf.logical_and(stretch, mask > 0)
    flat = draws.uniform(()) < 0.5
    spread = tf.where(flat, tf.constant(0.01, values.dtype), tf.cast(noise_scale, values.dtype))
    noise = mean + draws.normal(tf.shape(values), dtype=values.dtype) * unit * spread
    return tf.where(stretch[:, None], noise, values), stretch


def corrupt_window_kinds(values, mask, prob, longest, noise_scale, kinds, scale=None, center=None, hop=0.1, draws=None):
    """As `corrupt_window`, the stretch's corruption drawn uniformly from `kinds` (`CORRUPT_KINDS`).

    Returns `(values, corrupted)` with `corrupted` the bool [T] frames that were replaced.
    """
    draws = _draws(draws)
    window = tf.shape(values)[0]
    dim = tf.shape(values)[1:]
    unit = tf.ones(dim, values.dtype) if scale is None else tf.constant(scale, values.dtype)
    mean = tf.zeros(dim, values.dtype) if center is None else tf.constant(center, values.dtype)
    apply = draws.uniform(()) < prob
    real = tf.maximum(tf.reduce_sum(tf.cast(mask > 0, tf.int32)), 1)
    stretch = tf.logical_and(_stretch(window, longest, real, draws), apply)
    stretch = tf.logical_and(stretch, mask > 0)
    frames = tf.range(window)
    start = tf.argmax(tf.cast(stretch, tf.int32), output_type=tf.int32)
    length = tf.maximum(tf.reduce_sum(tf.cast(stretch, tf.int32)), 1)
    candidates = {}
    for kind in kinds:
        if kind == "noise":
            candidates[kind] = mean + draws.normal(tf.shape(values), dtype=values.dtype) * unit * noise_scale
        elif kind == "dropout":
            candidates[kind] = mean + draws.normal(tf.shape(values), dtype=values.dtype) * unit * 0.01
        elif kind == "zeros":
            candidates[kind] = tf.zeros_like(values)
        elif kind == "frozen":
            candidates[kind] = tf.broadcast_to(values[start], tf.shape(values))
        elif kind == "drift":
            real_values = tf.boolean_mask(values, mask > 0)
            low, high = tf.reduce_min(real_values, axis=0), tf.reduce_max(real_values, axis=0)
            sign = tf.where(draws.uniform(dim) < 0.5, -1.0, 1.0)
            direction = tf.cast(sign * draws.uniform(dim, 0.5, 1.0), values.dtype)
            ramp = tf.cast(tf.clip_by_value((frames - start) / length, 0.0, 1.0), values.dtype)[:, None]
            candidates[kind] = tf.clip_by_value(values + ramp * DRIFT_STD * unit * direction, low, high)
        elif kind == "desync":
            low_shift = max(1, int(round(DESYNC_SECONDS[0] / hop)))
            high_shift = max(low_shift + 1, int(round(DESYNC_SECONDS[1] / hop)) + 1)
            shift = draws.uniform((), low_shift, high_shift, dtype=tf.int32)
            source = tf.where(start - shift >= 0, frames - shift, frames + shift)
            candidates[kind] = tf.gather(values, tf.clip_by_value(source, 0, real - 1))
        elif kind == "swap":
            candidates[kind] = tf.gather(values, tf.math.floormod(frames + real // 2, real))
        else:
            raise ConfigError(f"unknown corruption kind {kind!r}; known: {', '.join(CORRUPT_KINDS)}")
    stacked = tf.stack([candidates[kind] for kind in kinds])
    which = draws.uniform((), 0, len(kinds), dtype=tf.int32)
    return tf.where(stretch[:, None], tf.gather(stacked, which), values), stretch


def augment_window(inputs: dict, config: dict, scale=None, center=None, targets=False, hop=0.1, seed=None) -> dict:
    """Augments one window's features.

    Args:
        inputs: dict with `audio` [T, D_a], `visual` [T, D_v], `mask` [T] (1 = real frame) and
            optionally `audio_present`, `visual_present` [T].
        config: augmentation dict (module docstring), already validated.
        scale: optional dict modality -> [D] float32 feature scale for the noise (the train
            standard deviation). Defaults to 1 for every feature.
        center: optional dict modality -> [D] float32 train mean, around which corrupted frames
            are drawn. Defaults to 0.
        targets: bool. Also return `<modality>_corruption_target` (bool [T], the frames the
            corruption replaced; all False without `corrupt_prob`). Defaults to False.
        hop: float. Frame hop in seconds (the `desync` shift). Defaults to 0.1.
        seed: optional int tensor [2]. Draw everything with stateless ops from this seed (`Draws`):
            the window's augmentation is then a pure function of it. Defaults to stateful draws.

    Returns:
        dict with the same keys; `mask` is returned unchanged, the presence flags are 0 where
        modality dropout removed a modality (and are added when missing).
    """
    draws = Draws(seed)
    out = dict(inputs)
    mask = tf.cast(inputs[features.MASK], tf.float32)
    window = tf.shape(mask)[0]
    for modality, key in features.PRESENT_KEYS.items():
        if key not in out:
            out[key] = mask
    if config.get("noise_std"):
        for modality in features.MODALITIES:
            values = out[modality]
            unit = 1.0 if scale is None else tf.constant(scale[modality], values.dtype)
            noise = draws.normal(tf.shape(values), stddev=config["noise_std"], dtype=values.dtype)
            out[modality] = values + noise * unit * mask[:, None]
    if config.get("corrupt_prob"):
        longest = config.get("corrupt_frames")
        longest = tf.maximum(window // 2, 1) if longest is None else tf.minimum(tf.constant(longest, tf.int32), window)
        noise_scale = config.get("corrupt_scale") or DEFAULT_CORRUPT_SCALE
        for modality in features.MODALITIES:
            if config.get("corrupt_kinds"):
                out[modality], corrupted = corrupt_window_kinds(
                    out[modality],
                    mask,
                    config["corrupt_prob"],
                    longest,
                    noise_scale,
                    config["corrupt_kinds"],
                    None if scale is None else scale[modality],
                    None if center is None else center[modality],
                    hop,
                    draws=draws,
                )
            else:
                out[modality], corrupted = corrupt_window(
                    out[modality],
                    mask,
                    config["corrupt_prob"],
                    longest,
                    noise_scale,
                    None if scale is None else scale[modality],
                    None if center is None else center[modality],
                    draws=draws,
                )
            if targets:
                out[CORRUPTION_TARGET_KEYS[modality]] = corrupted
    if targets:
        for modality, key in CORRUPTION_TARGET_KEYS.items():
            out.setdefault(key, tf.zeros_like(mask, tf.bool))
    if config.get("time_mask_frames"):
        param = tf.minimum(tf.constant(config["time_mask_frames"], tf.int32), window)
        for modality in features.MODALITIES:
            out[modality] = time_mask(out[modality], param, draws)
    if config.get("modality_dropout_prob"):
        longest = config.get("modality_dropout_frames")
        longest = window if longest is None else tf.minimum(tf.constant(longest, tf.int32), window)
        apply = draws.uniform(()) < config["modality_dropout_prob"]
        which = draws.uniform((), 0, 2, dtype=tf.int32)
        stretch = _stretch(window, longest, draws=draws)
        for index, modality in enumerate(features.MODALITIES):
            drop = tf.logical_and(stretch, tf.logical_and(apply, tf.equal(which, index)))
            out[modality] = tf.where(drop[:, None], tf.zeros_like(out[modality]), out[modality])
            key = features.PRESENT_KEYS[modality]
            out[key] = tf.where(drop, tf.zeros_like(out[key]), tf.cast(out[key], tf.float32))
    return out
