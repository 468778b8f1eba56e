"""Tests of GaussianContextHead: mu/sigma against NumPy, sampling statistics, gradients, dtypes."""

import keras
import numpy as np
import tensorflow as tf

from cold_keras.layers import GaussianContextHead
from tests.test_case import dtype_policy, run_layer_test, run_model_saving_test

B, T, D, K = 2, 6, 5, 4


def _x(seed=0, batch=B, frames=T):
    return np.random.default_rng(seed).normal(size=(batch, frames, D)).astype("float32")


def _np_softplus(z):
    return np.logaddexp(0.0, z)


def test_layer_basics():
    run_layer_test(
        GaussianContextHead,
        {"latent_dim": K, "epsilon": 1e-3, "seed": 3},
        _x(),
        expected_output_shape=((B, T, K), (B, T, K), (B, T, K)),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_mu_sigma_match_numpy_and_inference_returns_mu():
    x = _x()
    head = GaussianContextHead(K, epsilon=1e-3)
    h, mu, sigma = (np.asarray(t, np.float64) for t in head(x, training=False))
    w_mu, b_mu = (np.asarray(w, np.float64) for w in head.mu_dense.weights)
    w_s, b_s = (np.asarray(w, np.float64) for w in head.sigma_dense.weights)
    np.testing.assert_allclose(mu, x @ w_mu + b_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, _np_softplus(x @ w_s + b_s) + 1e-3, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(h, mu)
    assert sigma.min() >= 1e-3


def test_training_sample_is_a_reparameterised_gaussian():
    # The same frame repeated many times: the standardised samples must look like N(0, I).
    x = np.repeat(_x(frames=1)[:1], 4000, axis=0)
    head = GaussianContextHead(K, seed=7)
    h, mu, sigma = (np.asarray(t, np.float64) for t in head(x, training=True))
    z = ((h - mu) / sigma).reshape(-1, K)
    assert np.abs(z.mean(axis=0)).max() < 0.1
    assert np.abs(z.std(axis=0) - 1.0).max() < 0.1
    correlation = np.corrcoef(z.T)
    assert np.abs(correlation - np.eye(K)).max() < 0.1


def test_gradient_of_sample_reaches_sigma_only_in_training():
    x = _x()
    head = GaussianContextHead(K, seed=1)
    head(x)
    kernel = head.sigma_dense.kernel
    for training, expect_gradient in ((True, True), (False, False)):
        with tf.GradientTape() as tape:
            h, _, _ = head(x, training=training)
            loss = tf.reduce_sum(h)
        grad = tape.gradient(loss, kernel.value)
        has_gradient = grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
        assert has_gradient == expect_gradient


def test_seeded_samples_are_reproducible():
    x = _x()
    first = GaussianContextHead(K, seed=11)
    second = GaussianContextHead(K, seed=11)
    first(x)
    second(x)
    second.set_weights(first.get_weights())
    np.testing.assert_array_equal(np.asarray(first(x, training=True)[0]), np.asarray(second(x, training=True)[0]))
    # Successive draws differ.
    assert np.abs(np.asarray(first(x, training=True)[0]) - np.asarray(first(x, training=True)[0])).max() > 0


def test_float32_outputs_under_mixed_float16():
    with dtype_policy("mixed_float16"):
        head = GaussianContextHead(K)
        outputs = head(keras.ops.cast(_x(), "float16"), training=True)
    assert head.compute_dtype == "float32"
    assert all(t.dtype == "float32" for t in outputs)


def test_saving_round_trip(tmp_path):
    inputs = keras.Input((None, D))
    model = keras.Model(inputs, GaussianContextHead(K, name="head")(inputs))
    run_model_saving_test(model, _x(), tmp_path)
