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
    # Gradients reach magnitudes of ~20 (the loss weights frames up to 2U) and are sums over every
    # step taken in another order: float32 agreement is relative (2e-5 was seen on a loaded machine).
    for g_projected, g_reference in zip(gradients[1], gradients[0]):
        np.testing.assert_allclose(g_projected, g_reference, rtol=1e-4, atol=1e-5)


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


def _loop_bodies(layer, x, mask):
    """The node defs of the while-loop bodies in the graph of `layer(x, mask=mask)`."""
    function = tf.function(lambda values, m: layer(values, mask=m), autograph=False)
    graph = function.get_concrete_function(tf.constant(x), tf.constant(mask)).graph
    return [list(f.definition.node_def) for name, f in graph._functions.items() if "while_body" in str(name)]


def test_under_bfloat16_the_recurrence_runs_in_float32_with_weights_read_once():
    """Mixed policy: the input projection in bfloat16, the loop in float32 with no cast or variable
    read per step; the outputs are bfloat16 and agree with the float32 layer to bfloat16 precision."""
    mask = _masks()["right"]
    x = np.random.default_rng(4).normal(size=(B, T, D)).astype("float32")
    full = ProjectedGRU(U, return_sequences=True)
    full.build((B, T, D))
    expected = full(x, mask=mask).numpy()
    with dtype_policy("mixed_bfloat16"):
        layer = ProjectedGRU(U, return_sequences=True)
        layer.build((B, T, D))
        layer.set_weights(full.get_weights())
        y = layer(x, mask=mask)
        bodies = _loop_bodies(layer, x, mask)
    assert y.dtype == "bfloat16"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(y, "float32")), expected, atol=3e-2)
    assert bodies
    for body in bodies:
        ops_in_body = {node.op for node in body}
        assert "Cast" not in ops_in_body and "ReadVariableOp" not in ops_in_body, sorted(ops_in_body)
        matmuls = [node for node in body if node.op == "MatMul"]
        assert matmuls and all(node.attr["T"].type == tf.float32.as_datatype_enum for node in matmuls)
