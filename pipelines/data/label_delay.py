"""Annotation delay: raters' labels lag what they see and hear by a few seconds.

With `training.label_delay_seconds` = d (`--label-delay`), d rounded to D = round(d / hop) frames:

* training pairs the features of frame t with the labels of frame t + D: a recording of N frames
  becomes N - D training frames (features 0 .. N-D-1, labels D .. N-1); the last D feature frames,
  which have no label, are left out (masked), and a recording of at most D frames is skipped;
* predictions are shifted back onto the labels' own timeline: the prediction for label frame t is
  the model's output at feature frame t - D, and the first D label frames, which precede every
  feature frame that could explain them, repeat the output of feature frame 0. Prediction files,
  `metrics.json` and every score are on that timeline, so they compare directly with the labels.

d = 0 (the default) changes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.core.errors import ConfigError
from pipelines.data import features, records

CONFIG_KEY = "label_delay_seconds"


def check(value, source="training.label_delay_seconds") -> float:
    """The delay in seconds as a float >= 0; ConfigError naming `source` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{source} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def seconds_of(config) -> float:
    """`training.label_delay_seconds` of a resolved config (a RunConfig; 0 when unset)."""
    return check(config.training.label_delay_seconds or 0.0)


def delay_frames(delay_seconds, hop) -> int:
    """The delay in frames: round(delay / hop)."""
    delay_seconds = check(delay_seconds)
    if not hop > 0:
        raise ConfigError(f"the frame hop must be positive to convert a label delay, got {hop!r}")
    return int(round(delay_seconds / float(hop)))


def shift_back(values, frames: int) -> np.ndarray:
    """Per-frame values of the feature timeline moved onto the label timeline (module docstring).

    out[t] = values[t - frames] for t >= frames, values[0] before; same shape as `values`.
    """
    values = np.asarray(values)
    if frames <= 0 or values.ndim == 0 or values.shape[0] == 0:
        return values
    head = np.repeat(values[:1], min(frames, values.shape[0]), axis=0)
    return np.concatenate([head, values[: max(values.shape[0] - frames, 0)]], axis=0)


def shift_outputs(outputs: dict, frames: int) -> dict:
    """Every per-frame output of one recording shifted back; utterance outputs stay as they are."""
    if frames <= 0:
        return outputs
    return {
        name: value if name.endswith("_utterance") or np.ndim(value) == 0 else shift_back(value, frames)
        for name, value in outputs.items()
    }


def shift_predictions(predictions, frames: int):
    """`predict_recordings` results (or an iterator of them) with their outputs on the label timeline."""
    for recording in predictions:
        yield {**recording, "outputs": shift_outputs(recording["outputs"], frames)} if frames > 0 else recording


def delay_example(example: dict, frames: int) -> dict:
    """A parsed recording (tf.data element) paired for training with a delay of `frames` frames.

    Features, presence flags, timestamps and corruption flags keep frames 0 .. N-D-1, the per-frame
    labels frames D .. N-1. A recording with N <= D comes out empty (filter it out).
    """
    import tensorflow as tf

    if frames <= 0:
        return example
    out = dict(example)
    n = tf.shape(example[features.AUDIO])[0]
    keep = tf.maximum(n - frames, 0)  # a recording of at most D frames comes out empty
    front = (
        features.MODALITIES
        + tuple(features.PRESENT_KEYS.values())
        + (records.TIMESTAMPS,)
        + tuple(records.CORRUPTED_KEYS.values())
    )
    for key in front:
        if key in out:
            out[key] = out[key][:keep]
    for key in features.LABEL_KEYS:
        if key in out:
            out[key] = out[key][tf.minimum(frames, n) :]
    if records.NUM_FRAMES in out:
        out[records.NUM_FRAMES] = tf.cast(keep, out[records.NUM_FRAMES].dtype)
    return out


def delayed_label_arrays(label_pairs, frames: int) -> list:
    """(valence, arousal) label arrays as training sees them: the first `frames` frames dropped."""
    if frames <= 0:
        return list(label_pairs)
    return [(valence[frames:], arousal[frames:]) for valence, arousal in label_pairs if len(valence) > frames]
