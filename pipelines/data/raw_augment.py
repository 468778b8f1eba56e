"""Training-time augmentation of raw windows (paper section 5.3): face-crop geometry and SpecAugment.

Configured by the `raw.augment` section of a config; a key set to null, 0 or false is off:

* `flip`: bool. Horizontal flip with p = 0.5 (`keras.layers.RandomFlip`).
* `zoom`: float in [0, 1). Scaling by a factor in [-zoom, zoom] (`RandomZoom`). Paper: 0.25.
* `translate_pixels`: float >= 0. Shift by up to this many pixels of a 224-pixel crop, i.e. a
  fraction translate_pixels / 224 of the crop in each direction (`RandomTranslation`). Paper: 30.
* `rotate_degrees`: float in [0, 180]. Rotation by up to this angle (`RandomRotation`). Paper: 30.
* `time_warp`: int >= 0. SpecAugment time warping W: the patch's time axis is split at a random
  frame c and the point c moves by w ~ U[-W, W] frames (the two parts are resized linearly with
  `tf.image.resize`). Paper: 50.
* `freq_mask`: int >= 0. SpecAugment frequency masking F: f ~ U[0, F] adjacent mel bins
  (`tensorflow_io.audio.freq_mask` where it is installed). Paper: 27.
* `time_mask`: int >= 0. SpecAugment time masking T: t ~ U[0, T] adjacent frames
  (`tensorflow_io.audio.time_mask`). Paper: 40.

The SpecAugment values are in units of VGGish's 96-frame x 64-bin patch and are scaled to the
patch actually used (W and T by patch_frames / 96, F by mel_bins / 64), then clipped so that
the warp point and the masks fit inside a patch (`spec_parameters`). Masked cells take the
patch's mean value (SpecAugment masks a mean-normalised spectrogram with zeros).

What is applied where: one face transformation per window, the same for every frame of it
(a face track moves as a whole; the frames are stacked along the channel axis and transformed
as one image), and independent SpecAugment draws for every log-mel patch (each patch is one
input of the audio backbone). Only the training pipeline augments; evaluation, prediction and
the exported model never do.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pipelines.config.augmentation import RAW_KEYS as KEYS  # noqa: F401
from pipelines.config.augmentation import RAW_PAPER as PAPER  # noqa: F401
from pipelines.config.augmentation import validate_raw_config as validate_config
from pipelines.data.augment import Draws, freq_mask, time_mask

REFERENCE_CROP = 224
REFERENCE_PATCH = (96, 64)  # VGGish: frames, mel bins


def spec_parameters(config, patch_shape):
    """(W, F, T) of SpecAugment for a [patch_frames, mel_bins] patch: scaled from VGGish's patch, clipped.

    W <= (P - 3) // 2 (the warp point and both parts keep at least one frame), F <= M - 1 and
    T <= P - 1 (a mask never covers the whole patch).
    """
    frames, bins = (int(d) for d in patch_shape)
    scale_t, scale_f = frames / REFERENCE_PATCH[0], bins / REFERENCE_PATCH[1]
    warp = min(int(round((config.get("time_warp") or 0) * scale_t)), max(0, (frames - 3) // 2))
    freq = min(int(round((config.get("freq_mask") or 0) * scale_f)), bins - 1)
    time = min(int(round((config.get("time_mask") or 0) * scale_t)), frames - 1)
    return warp, freq, time


def _mask_to_mean(patch, mask_fn, param, draws=None):
    """`mask_fn` applied to a patch, the masked cells set to the patch mean and the others untouched."""
    ones = tf.ones_like(patch)
    hidden = tf.equal(mask_fn(ones, param) if draws is None else mask_fn(ones, param, draws), 0)
    return tf.where(hidden, tf.reduce_mean(patch), patch)


def time_warp(patch, warp, draws=None):
    """SpecAugment time warping of one [P, M] patch: the frame at c ~ U[W + 1, P - W - 1) moves by w ~ U[-W, W]."""
    if not warp:
        return patch
    draws = draws or Draws()
    frames = tf.shape(patch)[0]
    centre = draws.uniform((), warp + 1, frames - warp - 1, dtype=tf.int32)
    shift = draws.uniform((), -warp, warp + 1, dtype=tf.int32)
    bins = tf.shape(patch)[1]
    image = patch[:, :, None]
    left = tf.image.resize(image[:centre], tf.stack([centre + shift, bins]), method="bilinear")
    right = tf.image.resize(image[centre:], tf.stack([frames - centre - shift, bins]), method="bilinear")
    return tf.ensure_shape(tf.concat([left, right], 0)[:, :, 0], patch.shape)


def spec_augment(patches, warp, freq, time, seed=None):
    """Time warp, then frequency and time masking, drawn independently for every patch of [T, P, M].

    With `seed` (int tensor [2]) the draws are stateless: patch t draws from `seed` folded with t."""
    if not (warp or freq or time):
        return patches

    def one(patch, draws=None):
        patch = time_warp(patch, warp, draws)
        if freq:
            patch = _mask_to_mean(patch, freq_mask, freq + 1, draws)
        if time:
            patch = _mask_to_mean(patch, time_mask, time + 1, draws)
        return patch

    signature = tf.TensorSpec(patches.shape[1:], patches.dtype)
    if seed is None:
        return tf.map_fn(one, patches, fn_output_signature=signature)
    seed = tf.cast(seed, tf.int64)
    indices = tf.range(tf.shape(patches, out_type=tf.int64)[0])

    def seeded(args):
        patch, index = args
        return one(patch, Draws(tf.random.experimental.stateless_fold_in(seed, index)))

    return tf.map_fn(seeded, (patches, indices), fn_output_signature=signature)


class _WindowSeed(keras.random.SeedGenerator):
    """Stands in for a Keras preprocessing layer's SeedGenerator during one call: stateless seeds
    folded from one window's seed, so the layer's draws are a pure function of that seed."""

    def __init__(self, seed):  # no state variable: nothing to advance
        self._seed = tf.cast(seed, tf.int64)
        self._count = 0

    def next(self, ordered=True):
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._count)


class FaceAugmenter:
    """The paper's face augmentations as Keras preprocessing layers, one draw per window.

    Args:
        config: validated raw augmentation dict.
        face_shape: (H, W, 3).
        seed: optional int for the layers' random generators.
    """

    def __init__(self, config, face_shape, seed=None):
        self.height, self.width, self.channels = (int(d) for d in face_shape)
        self.layers = []
        # float32 whatever the global policy: the input pipeline works in float32, the model casts.
        common = {"seed": seed, "dtype": "float32"}
        if config.get("flip"):
            self.layers.append(keras.layers.RandomFlip("horizontal", **common))
        if config.get("zoom"):
            self.layers.append(keras.layers.RandomZoom((-config["zoom"], config["zoom"]), **common))
        if config.get("translate_pixels"):
            fraction = min(1.0, config["translate_pixels"] / REFERENCE_CROP)
            self.layers.append(keras.layers.RandomTranslation(fraction, fraction, **common))
        if config.get("rotate_degrees"):
            self.layers.append(keras.layers.RandomRotation(config["rotate_degrees"] / 360.0, **common))

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def __call__(self, faces, seed=None):
        """One random transformation applied to every frame of [T, H, W, 3] float `faces`.

        With `seed` (int tensor [2]) the transformation is drawn statelessly from it."""
        if not self.layers:
            return faces
        frames = tf.shape(faces)[0]
        stacked = tf.reshape(tf.transpose(faces, [1, 2, 0, 3]), [self.height, self.width, -1])
        for index, layer in enumerate(self.layers):
            if seed is None:
                stacked = layer(stacked, training=True)
                continue
            own = layer.generator
            layer.generator = _WindowSeed(tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), index))
            try:
                stacked = layer(stacked, training=True)
            finally:
                layer.generator = own
        out = tf.reshape(stacked, [self.height, self.width, frames, self.channels])
        return tf.transpose(out, [2, 0, 1, 3])


def is_active(config) -> bool:
    return any(validate_config(config).values())
