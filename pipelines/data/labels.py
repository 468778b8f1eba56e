"""Labels as classes: the paper's three bins of a dimensional label, and class weights of the train split."""

from __future__ import annotations

import sys

import numpy as np

from pipelines.data import features
from pipelines.data.records import label_arrays


def to_classes(values):
    """Three-way bins (paper section 5.1): 0 if v < -0.05, 1 if -0.05 <= v <= 0.05, 2 if v > 0.05.

    The threshold is compared in the labels' own dtype, so a float32 label of exactly -0.05 is
    neutral. Works on NumPy arrays (returns int32 NumPy) and on tensors (returns int32 tensors).
    """
    tf = sys.modules.get("tensorflow")  # a tensor means TensorFlow is loaded; NumPy alone never loads it
    if tf is not None and isinstance(values, (tf.Tensor, tf.Variable)):
        threshold = tf.cast(features.CLASS_THRESHOLD, values.dtype)
        return tf.cast(values >= -threshold, tf.int32) + tf.cast(values > threshold, tf.int32)
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float32)
    threshold = values.dtype.type(features.CLASS_THRESHOLD)
    return (values >= -threshold).astype(np.int32) + (values > threshold).astype(np.int32)


def class_weights(artifact_dir):
    """Class weights for the three bins, from the train split.

    w_k = (1 / p_k) / mean_j (1 / p_j) with p_k the relative size of bin k in the train labels
    (frames for per-frame corpora, utterances for sequence-level ones), so the weights average 1
    over the classes present. A class absent from the train split gets weight 0.

    Returns:
        [[w_neg, w_neu, w_pos] for valence, [w_low, w_neu, w_high] for arousal] as Python floats.
    """
    labels = label_arrays(artifact_dir, features.TRAIN)
    weights = []
    for index, key in enumerate(features.LABEL_KEYS):
        values = np.concatenate([pair[index] for pair in labels])
        counts = np.bincount(to_classes(values), minlength=features.NUM_CLASSES).astype(np.float64)
        present = counts > 0
        inverse = np.zeros(features.NUM_CLASSES)
        inverse[present] = counts.sum() / counts[present]
        inverse[present] /= inverse[present].mean()
        weights.append([float(w) for w in inverse])
    return weights
