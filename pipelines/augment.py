"""Training-time augmentation of one window: feature noise, time masking, modality dropout.

Configured by a dict; a key missing or set to None switches that augmentation off:

* `noise_std`: float >= 0. Gaussian noise added to every real frame of both modalities, in units
  of each feature's train standard deviation (`scale` below), so one value suits raw features of
  any range. Padded frames stay zero.
* `time_mask_frames`: int >= 1. SpecAugment time masking (`tensorflow_io.audio.time_mask`) applied
  to each modality independently: a stretch of t ~ U[0, time_mask_frames) frames is zeroed.
* `modality_dropout_prob`: float in [0, 1]. Probability that one window loses one modality (chosen
  at random) for a stretch of frames; its features are zeroed there, the mask is left alone, so
  the model learns to cope with a modality that goes silent or dark.
* `modality_dropout_frames`: int >= 1. Longest such stretch (length ~ U[1, this]). Defaults to
  the whole window.

Order: noise first, then the masks, so masked frames are exactly zero.
"""

from __future__ import annotations

import tensorflow as tf

from pipelines import features
from pipelines.errors import ConfigError

try:  # Only tensorflow-io's pure-Python ops load on current TensorFlow; the package may be absent.
    import tensorflow_io as _tfio

    _tfio_time_mask = _tfio.audio.time_mask
except ImportError:  # pragma: no cover - depends on the environment
    _tfio_time_mask = None

KEYS = ("noise_std", "time_mask_frames", "modality_dropout_prob", "modality_dropout_frames")


def validate_config(config, source="augment") -> dict:
    """Checks an augmentation dict; returns it with every key present (None = off).

    Raises:
        ConfigError: an unknown key or a value out of range, naming both.
    """
    if config is None:
        return {key: None for key in KEYS}
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must be a mapping with keys {', '.join(KEYS)}, got {config!r}")
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    out = {key: config.get(key) for key in KEYS}

    def number(key, low, high=None, integer=False):
        value = out[key]
        if value is None:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if not ok or value < low or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{source}.{key} must be {kind} {bounds}, got {value!r}")
        out[key] = int(value) if integer else float(value)

    number("noise_std", 0.0)
    number("time_mask_frames", 1, integer=True)
    number("modality_dropout_prob", 0.0, 1.0)
    number("modality_dropout_frames", 1, integer=True)
    return out


def is_active(config) -> bool:
    config = validate_config(config)
    return any(config[key] for key in ("noise_std", "time_mask_frames", "modality_dropout_prob"))


def fallback_time_mask(values, param):
    """`tensorflow_io.audio.time_mask` in plain TensorFlow: zeros frames [t0, t0 + t) of [T, D] `values`.

    t ~ U[0, param), t0 ~ U[0, T - t); the same draws and the same form as tensorflow-io's op.
    """
    values = tf.convert_to_tensor(values)
    time_max = tf.shape(values)[0]
    t = tf.random.uniform(shape=(), minval=0, maxval=param, dtype=tf.int32)
    t0 = tf.random.uniform(shape=(), minval=0, maxval=time_max - t, dtype=tf.int32)
    indices = tf.reshape(tf.range(time_max), (-1, 1))
    condition = tf.logical_and(indices >= t0, indices < t0 + t)
    return tf.where(condition, tf.cast(0, values.dtype), values)


def time_mask(values, param):
    """Zeros a random stretch of fewer than `param` frames of [T, D] `values` (needs 1 <= param <= T)."""
    if _tfio_time_mask is not None:
        return _tfio_time_mask(values, param=param)
    return fallback_time_mask(values, param)


def augment_window(inputs: dict, config: dict, scale=None) -> dict:
    """Augments one window's features.

    Args:
        inputs: dict with `audio` [T, D_a], `visual` [T, D_v], `mask` [T] (1 = real frame).
        config: augmentation dict (module docstring), already validated.
        scale: optional dict modality -> [D] float32 feature scale for the noise (the train
            standard deviation). Defaults to 1 for every feature.

    Returns:
        dict with the same keys; `mask` is returned unchanged.
    """
    out = dict(inputs)
    mask = tf.cast(inputs[features.MASK], tf.float32)
    window = tf.shape(mask)[0]
    if config.get("noise_std"):
        for modality in features.MODALITIES:
            values = out[modality]
            unit = 1.0 if scale is None else tf.constant(scale[modality], values.dtype)
            noise = tf.random.normal(tf.shape(values), stddev=config["noise_std"], dtype=values.dtype)
            out[modality] = values + noise * unit * mask[:, None]
    if config.get("time_mask_frames"):
        param = tf.minimum(tf.constant(config["time_mask_frames"], tf.int32), window)
        for modality in features.MODALITIES:
            out[modality] = time_mask(out[modality], param)
    if config.get("modality_dropout_prob"):
        longest = config.get("modality_dropout_frames")
        longest = window if longest is None else tf.minimum(tf.constant(longest, tf.int32), window)
        apply = tf.random.uniform(()) < config["modality_dropout_prob"]
        which = tf.random.uniform((), 0, 2, dtype=tf.int32)
        length = tf.random.uniform((), 1, longest + 1, dtype=tf.int32)
        start = tf.random.uniform((), 0, window - length + 1, dtype=tf.int32)
        frames = tf.range(window)
        stretch = tf.logical_and(frames >= start, frames < start + length)
        for index, modality in enumerate(features.MODALITIES):
            drop = tf.logical_and(stretch, tf.logical_and(apply, tf.equal(which, index)))
            out[modality] = tf.where(drop[:, None], tf.zeros_like(out[modality]), out[modality])
    return out
