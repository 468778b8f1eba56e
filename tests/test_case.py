"""Shared checks for layers and models (after keras-hub's `TestCase`).

`run_layer_test`: config round trip, eager and symbolic calls with the expected shapes, one training
step with finite, non-trivial gradients, and the output dtypes under a mixed precision policy.
`run_model_saving_test`: `.keras` save and reload with identical outputs in inference mode.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf
from keras import tree


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside the block and restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _symbolic(value):
    """A batch-free `keras.Input` (batch axis None) for a NumPy array, nested structures too."""
    return tree.map_structure(
        lambda x: keras.Input(shape=np.shape(x)[1:], batch_size=None, dtype=str(np.asarray(x).dtype)),
        value,
    )


def _shapes(value):
    """Flat list of the shapes of a nested structure of tensors."""
    return [tuple(x.shape) for x in tree.flatten(value)]


def _expected_shapes(expected):
    """Flat list of shape tuples from one shape or a nested structure of shapes."""
    if isinstance(expected, (tuple, list)) and all(d is None or isinstance(d, int) for d in expected):
        return [tuple(expected)]
    shapes = []
    for item in expected.values() if isinstance(expected, dict) else expected:
        shapes.extend(_expected_shapes(item))
    return shapes


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    *,
    call_kwargs=None,
    expected_output_shape=None,
    expected_output_dtype=None,
    run_training_step=True,
    mixed_precision_output_dtype="compute",
):
    """Runs the standard checks every layer must pass; returns the eager outputs.

    Args:
        layer_cls: layer class.
        init_kwargs: dict. Constructor arguments.
        input_data: array or nested structure of arrays (first positional call argument).
        call_kwargs: dict or None. Extra call arguments; arrays among them are fed symbolically too.
        expected_output_shape: nested structure of shape tuples, or None (not checked).
        expected_output_dtype: str or None. Dtype of every output under float32.
        run_training_step: bool. Take one gradient step on sum(mean(output^2)).
        mixed_precision_output_dtype: "compute" (the policy's compute dtype), a dtype string every
            floating output must have under `mixed_bfloat16`, or None to skip that check.
    """
    call_kwargs = dict(call_kwargs or {})

    # Config round trip.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config
    registered = keras.saving.get_registered_object(keras.saving.get_registered_name(layer_cls))
    assert registered is layer_cls, "the layer is not registered as a serializable object"

    # Eager call.
    outputs = layer(input_data, **call_kwargs)
    if expected_output_shape is not None:
        assert _shapes(outputs) == _expected_shapes(expected_output_shape)
    if expected_output_dtype is not None:
        for x in tree.flatten(outputs):
            assert x.dtype == expected_output_dtype, (x.dtype, expected_output_dtype)

    # Symbolic call (functional model) with the same shapes once the batch axis is filled in.
    symbolic_inputs = _symbolic(input_data)
    symbolic_kwargs = {k: _symbolic(v) if isinstance(v, np.ndarray) else v for k, v in call_kwargs.items()}
    symbolic_layer = layer_cls.from_config(config)
    symbolic_outputs = symbolic_layer(symbolic_inputs, **symbolic_kwargs)
    tensor_kwargs = {k: v for k, v in symbolic_kwargs.items() if isinstance(v, keras.KerasTensor)}
    model = keras.Model(
        inputs=tree.flatten(symbolic_inputs) + list(tensor_kwargs.values()),
        outputs=symbolic_outputs,
    )
    model_outputs = model(tree.flatten(input_data) + [call_kwargs[k] for k in tensor_kwargs], training=False)
    assert _shapes(model_outputs) == _shapes(outputs)
    for x in tree.flatten(symbolic_outputs):
        assert x.shape[0] is None

    # One training step: gradients reach every trainable weight and stay finite.
    if run_training_step and layer.trainable_weights:
        train_layer = layer_cls.from_config(config)
        with tf.GradientTape() as tape:
            out = train_layer(input_data, training=True, **call_kwargs)
            loss = sum(
                tf.reduce_mean(tf.square(tf.cast(x, "float32"))) for x in tree.flatten(out) if x.dtype.is_floating
            )
        weights = train_layer.trainable_weights
        grads = tape.gradient(loss, [w.value for w in weights])
        for w, g in zip(weights, grads):
            assert g is not None, f"no gradient reaches {w.path}"
            assert np.all(np.isfinite(np.asarray(g))), f"non-finite gradient for {w.path}"
        assert any(float(np.abs(np.asarray(g)).max()) > 0 for g in grads)
        optimizer = keras.optimizers.SGD(learning_rate=0.01)
        optimizer.apply_gradients(zip(grads, weights))

    # Mixed precision: the layer picks up the global policy (or keeps float32 where it must).
    if mixed_precision_output_dtype is not None:
        with dtype_policy("mixed_bfloat16"):
            mp_layer = layer_cls.from_config({k: v for k, v in config.items() if k != "dtype"})
            mp_outputs = mp_layer(input_data, **call_kwargs)
            expected = (
                mp_layer.compute_dtype if mixed_precision_output_dtype == "compute" else mixed_precision_output_dtype
            )
            for x in tree.flatten(mp_outputs):
                if x.dtype.is_floating:
                    assert x.dtype == expected, (x.dtype, expected)
                    assert np.all(np.isfinite(np.asarray(tf.cast(x, "float32"))))
    return outputs


def run_model_saving_test(model, input_data, tmp_path, *, call_kwargs=None):
    """Saves `model` as `.keras`, reloads it and checks identical inference outputs.

    Args:
        model: keras.Model (or a layer, wrapped in a functional model by the caller).
        input_data: model inputs (array or dict of arrays).
        tmp_path: pathlib.Path. Directory for the file.
        call_kwargs: dict or None. Extra call arguments.

    Returns:
        the reloaded model.
    """
    call_kwargs = dict(call_kwargs or {})
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    expected = model(input_data, training=False, **call_kwargs)
    actual = reloaded(input_data, training=False, **call_kwargs)
    # A reloaded functional model may return lists where the original returned tuples.
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(actual)
    assert len(tree.flatten(expected)) == len(tree.flatten(actual))
    for e, a in zip(tree.flatten(expected), tree.flatten(actual)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-6, atol=1e-6)
    return reloaded
