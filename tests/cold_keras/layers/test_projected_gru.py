"""Tests of ProjectedGRU: the same outputs and gradients as keras.layers.GRU, every mask layout."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cold_keras.layers.projected_gru import ProjectedGRU
from tests.test_case import dtype_policy

B, T, D, U = 3, 9, 5, 4


def _masks():
    right = np.ones((B, T), bool)
    right[1, 6:] = False
    right[2, 2:] = False
    left = np.ones((B, T), bool)
    left[1, :3] = False
    holes = np.ones((B, T), bool)
    holes[0, 4] = False
    return {"none": None, "full": np.ones((B, T), bool), "right": right, "left": left, "holes": holes}


def _pair(go_backwards=None):
    """A Keras BiGRU and a ProjectedGRU BiGRU with the same weights."""

    def bidirectional(cls):
        return keras.layers.Bidirectional(
            cls(U, return_sequences=True),
            backward_layer=cls(U, return_sequences=True, go_backwards=True),
        )

    reference, projected = bidirectional(keras.layers.GRU), bidirectional(ProjectedGRU)
    reference.build((B, T, D))
    projected.build((B, T, D))
    projected.set_weights(reference.get_weights())
    return reference, projected


@pytest.mark.parametrize("mask_name", list(_masks()))
def test_outputs_and_gradients_equal_keras_gru(mask_name):
    mask = _masks()[mask_name]
    x = tf.constant(np.random.default_rng(0).normal(size=(B, T, D)).astype("float32"))
    reference, projected = _pair()
    outputs, gradients = [], []
    for layer in (reference, projected):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, mask=mask)
            # A loss over the real frames only (padded frames never enter a loss).
            weights = np.ones((B, T, 1), "float32") if mask is None else mask[..., None].astype("float32")
            loss = tf.reduce_sum(tf.square(y) * weights * np.arange(1, 2 * U + 1, dtype="float32"))
        grads = tape.gradient(loss, [x] + layer.trainable_variables)
        outputs.append(y.numpy())
        gradients.append([g.numpy() for g in grads])
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-6)
    for g_projected, g_reference in zip(gradients[1], gradients[0]):
        np.testing.assert_allclose(g_projected, g_reference, atol=1e-5)


def test_right_padded_frames_are_zero_and_do_not_reach_real_frames():
    mask = _masks()["right"]
    x = np.random.default_rng(1).normal(size=(B, T, D)).astype("float32")
    _, projected = _pair()
    y = projected(x, mask=mask).numpy()
    assert np.all(y[~mask] == 0.0)
    changed = x.copy()
    changed[~mask] = 100.0
    np.testing.assert_array_equal(projected(changed, mask=mask).numpy()[mask], y[mask])


def test_inside_a_compiled_function_and_under_bfloat16():
    mask = _masks()["right"]
    x = np.random.default_rng(2).normal(size=(B, T, D)).astype("float32")
    reference, projected = _pair()
    compiled = tf.function(lambda values, m: projected(values, mask=m))
    np.testing.assert_allclose(compiled(x, mask).numpy(), reference(x, mask=mask).numpy(), atol=1e-6)
    with dtype_policy("mixed_bfloat16"):
        layer = ProjectedGRU(U, return_sequences=True)
        y = layer(x, mask=mask)
        assert y.dtype == "bfloat16"
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(y, "float32"))))


def test_config_round_trip_and_fallback_settings():
    layer = ProjectedGRU(U, return_sequences=True, go_backwards=True)
    clone = ProjectedGRU.from_config(layer.get_config())
    assert clone.go_backwards and clone.units == U
    layer.build((B, T, D))
    assert layer._hoistable()
    # Settings the hoisted loop does not implement take Keras' own loop, with the same results.
    for kwargs in ({"recurrent_dropout": 0.1}, {"reset_after": False}, {"activation": "relu"}):
        other = ProjectedGRU(U, return_sequences=True, **kwargs)
        other.build((B, T, D))
        assert not other._hoistable()
        reference = keras.layers.GRU(U, return_sequences=True, **kwargs)
        reference.build((B, T, D))
        other.set_weights(reference.get_weights())
        x = np.random.default_rng(3).normal(size=(B, T, D)).astype("float32")
        np.testing.assert_allclose(other(x).numpy(), reference(x).numpy(), atol=1e-6)


def test_cudnn_blockers_name_each_setting():
    from cold_keras.layers.projected_gru import cudnn_blockers

    assert cudnn_blockers(keras.layers.GRU(U)) == []
    blockers = cudnn_blockers(
        keras.layers.GRU(U, activation="relu", reset_after=False, recurrent_dropout=0.2, unroll=True)
    )
    assert blockers == [
        "activation=relu (needs tanh)",
        "reset_after=False (needs True)",
        "recurrent_dropout=0.2 (needs 0)",
        "unroll=True (needs False)",
    ]
