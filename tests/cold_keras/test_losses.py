"""Tests of cold_keras.losses against independent NumPy implementations of the equations."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from cold_keras import losses

tfd = tfp.distributions

EPS = 1e-7


# ---------------------------------------------------------------------------------------------------
# NumPy references (written from the equations, not from the implementation)
# ---------------------------------------------------------------------------------------------------


def np_ccc_population(x, y):
    """CCC with population moments and the loss's epsilon, on already-selected frames."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (np.var(x) + np.var(y) + (x.mean() - y.mean()) ** 2 + EPS)


def np_log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max()
    return z - np.log(np.sum(np.exp(z)))


def np_symmetric_kl(a, b):
    log_p = np_log_softmax(a)
    log_q = np_log_softmax(b)
    p, q = np.exp(log_p), np.exp(log_q)
    return np.sum(p * (log_p - log_q)) + np.sum(q * (log_q - log_p))


def np_calibration(d, norms, convention="informativeness", standardize=False, temperature=1.0):
    """L_CO of one sequence given only its valid frames."""
    d = np.asarray(d, np.float64)
    norms = np.asarray(norms, np.float64)
    if d.size == 0:
        return 0.0
    s = 1.0 / norms if convention == "informativeness" else norms
    if standardize:
        d = (d - d.mean()) / np.sqrt(d.var() + 1e-6)
        s = (s - s.mean()) / np.sqrt(s.var() + 1e-6)
    return np_symmetric_kl(d / temperature, s / temperature)


def np_calibration_batch(d, norms, mask, **kwargs):
    return np.array([np_calibration(d[b][mask[b] > 0], norms[b][mask[b] > 0], **kwargs) for b in range(d.shape[0])])


def np_latent_kl(mu, sigma):
    """Per-frame KL(N(mu, sigma) || N(0, I)) summed over the last axis."""
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    return np.sum(np.log(1.0 / sigma) + (sigma**2 + mu**2 - 1.0) / 2.0, axis=-1)


def right_padded_mask(lengths, num_frames):
    return (np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------------
# masked_mean, concordance_cc, ConcordanceLoss, emotion_regression_loss
# ---------------------------------------------------------------------------------------------------


def test_masked_mean_matches_numpy_and_ignores_padding(rng):
    x = rng.normal(size=(3, 7)).astype(np.float32)
    mask = right_padded_mask([7, 2, 4], 7)
    x_padded = np.where(mask > 0, x, np.nan).astype(np.float32)
    expected = x[mask > 0].astype(np.float64).mean()
    np.testing.assert_allclose(float(losses.masked_mean(x_padded, mask)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(losses.masked_mean(x)), x.astype(np.float64).mean(), rtol=1e-5)
    assert float(losses.masked_mean(x, np.zeros_like(mask))) == 0.0


def test_concordance_cc_matches_numpy_over_flattened_batch(rng):
    y_true = rng.uniform(-1, 1, size=(4, 9)).astype(np.float32)
    y_pred = (0.6 * y_true + 0.3 * rng.normal(size=(4, 9)) + 0.1).astype(np.float32)
    expected = np_ccc_population(y_true.ravel(), y_pred.ravel())
    np.testing.assert_allclose(float(losses.concordance_cc(y_true, y_pred)), expected, rtol=1e-5)


def test_concordance_cc_masked_equals_ccc_of_valid_frames(rng):
    y_true = rng.uniform(-1, 1, size=(3, 10)).astype(np.float32)
    y_pred = (y_true + 0.5 * rng.normal(size=(3, 10))).astype(np.float32)
    mask = right_padded_mask([10, 3, 6], 10)
    # Garbage (including NaN) in padded frames must not change the value.
    y_pred_padded = np.where(mask > 0, y_pred, np.nan).astype(np.float32)
    y_true_padded = np.where(mask > 0, y_true, 50.0).astype(np.float32)
    expected = np_ccc_population(y_true[mask > 0], y_pred[mask > 0])
    got = float(losses.concordance_cc(y_true_padded, y_pred_padded, mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    unmasked = float(losses.concordance_cc(y_true, y_pred))
    assert abs(unmasked - got) > 1e-3  # the mask really selects frames


def test_concordance_cc_edge_cases_stay_finite():
    x = np.array([[0.1, 0.4, -0.3, 0.2]], np.float32)
    constant = np.full_like(x, 0.25)
    # One side constant: covariance 0, so CCC 0 (finite, no NaN).
    np.testing.assert_allclose(float(losses.concordance_cc(x, constant)), np_ccc_population(x, constant), atol=1e-7)
    assert float(losses.concordance_cc(x, constant)) == pytest.approx(0.0, abs=1e-6)
    # Both constant and equal: 0 / 0 is kept finite by epsilon.
    assert float(losses.concordance_cc(constant, constant)) == pytest.approx(0.0, abs=1e-6)
    # A single frame: all moments vanish, finite 0.
    assert float(losses.concordance_cc([[0.3]], [[0.7]])) == pytest.approx(0.0, abs=1e-6)
    # A NaN in a valid frame propagates (never hidden), in a padded frame it is ignored.
    with_nan = x.copy()
    with_nan[0, 1] = np.nan
    assert np.isnan(float(losses.concordance_cc(x, with_nan)))
    mask = np.array([[1, 0, 1, 1]], np.float32)
    expected = np_ccc_population(x[mask > 0], (x * 0.5)[mask > 0])
    got = float(losses.concordance_cc(x, np.where(mask > 0, x * 0.5, np.nan), mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_concordance_loss_is_one_minus_ccc_with_mask_as_sample_weight(rng):
    y_true = rng.uniform(-1, 1, size=(2, 8)).astype(np.float32)
    y_pred = (y_true * 0.5 + rng.normal(size=(2, 8)) * 0.2).astype(np.float32)
    mask = right_padded_mask([8, 5], 8)
    loss = losses.ConcordanceLoss()
    expected = 1.0 - np_ccc_population(y_true[mask > 0], y_pred[mask > 0])
    np.testing.assert_allclose(float(loss(y_true, y_pred, sample_weight=mask)), expected, rtol=1e-5)
    expected_unmasked = 1.0 - np_ccc_population(y_true.ravel(), y_pred.ravel())
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected_unmasked, rtol=1e-5)


def test_concordance_loss_config_round_trip():
    loss = losses.ConcordanceLoss(name="ccc_loss")
    assert keras.saving.get_registered_name(losses.ConcordanceLoss) == "cold_keras>ConcordanceLoss"
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, losses.ConcordanceLoss)
    assert restored.get_config() == loss.get_config()


def test_emotion_regression_loss_is_one_minus_ccc_plus_masked_mse(rng):
    y_true = rng.uniform(-1, 1, size=(3, 6)).astype(np.float32)
    y_pred = rng.uniform(-1, 1, size=(3, 6)).astype(np.float32)
    mask = right_padded_mask([6, 1, 4], 6)
    t, p = y_true[mask > 0], y_pred[mask > 0]
    expected = 1.0 - np_ccc_population(t, p) + np.mean((t - p) ** 2)
    got = float(losses.emotion_regression_loss(y_true, y_pred, mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# weighted_cross_entropy, per_frame_distances
# ---------------------------------------------------------------------------------------------------


def np_frame_ce(labels, logits):
    logits = np.asarray(logits, np.float64)
    out = np.empty(labels.shape)
    for idx in np.ndindex(labels.shape):
        out[idx] = -np_log_softmax(logits[idx])[labels[idx]]
    return out


def test_weighted_cross_entropy_matches_numpy(rng):
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32) * 2
    labels = rng.integers(0, 3, size=(2, 5))
    mask = right_padded_mask([5, 3], 5)
    labels_padded = np.where(mask > 0, labels, -1)  # padding label out of range on purpose
    weights = np.array([0.5, 2.0, 3.0])
    ce = np_frame_ce(labels, logits)
    w = weights[labels] * mask
    expected = np.sum(w * ce) / np.sum(w)
    got = float(losses.weighted_cross_entropy(labels_padded, logits, weights, mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Without class weights: the plain masked mean of the cross-entropy.
    got_plain = float(losses.weighted_cross_entropy(labels_padded, logits, mask=mask))
    np.testing.assert_allclose(got_plain, ce[mask > 0].mean(), rtol=1e-5)
    # Equal weights change nothing (normalised by the summed weights).
    got_equal = float(losses.weighted_cross_entropy(labels_padded, logits, [4.0, 4.0, 4.0], mask))
    np.testing.assert_allclose(got_equal, ce[mask > 0].mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="one weight per class"):
        losses.weighted_cross_entropy(labels, logits, [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], mask)
    with pytest.raises(ValueError, match="one weight per class"):
        losses.weighted_cross_entropy(labels, logits, [1.0, 2.0], mask)


def test_per_frame_distances_regression_and_classification(rng):
    y_true = rng.uniform(-1, 1, size=(2, 4)).astype(np.float32)
    y_pred = rng.uniform(-1, 1, size=(2, 4)).astype(np.float32)
    got = losses.per_frame_distances(y_true, y_pred, "regression")
    np.testing.assert_allclose(np.asarray(got), (y_true - y_pred) ** 2, rtol=1e-6)

    labels = rng.integers(0, 3, size=(2, 4))
    logits = rng.normal(size=(2, 4, 3)).astype(np.float32)
    got = losses.per_frame_distances(labels, logits, "classification")
    assert tuple(got.shape) == (2, 4)
    np.testing.assert_allclose(np.asarray(got), np_frame_ce(labels, logits), rtol=1e-5)

    with pytest.raises(ValueError, match="segmentation"):
        losses.per_frame_distances(labels, logits, "segmentation")


def test_per_frame_distances_pass_no_gradient(rng):
    y_pred = tf.Variable(rng.normal(size=(2, 4)).astype(np.float32))
    logits = tf.Variable(rng.normal(size=(2, 4, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        d_reg = tf.reduce_sum(losses.per_frame_distances(tf.zeros((2, 4)), y_pred, "regression"))
        d_cls = tf.reduce_sum(losses.per_frame_distances(tf.zeros((2, 4), tf.int32), logits, "classification"))
    zero = tf.UnconnectedGradients.ZERO
    assert not np.any(tape.gradient(d_reg, y_pred, unconnected_gradients=zero).numpy())
    assert not np.any(tape.gradient(d_cls, logits, unconnected_gradients=zero).numpy())


# ---------------------------------------------------------------------------------------------------
# calibration_ordinal_loss
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def calibration_inputs(rng):
    d = rng.gamma(2.0, 0.3, size=(3, 8)).astype(np.float32)
    norms = rng.uniform(0.5, 3.0, size=(3, 8)).astype(np.float32)
    mask = right_padded_mask([8, 5, 2], 8)
    return d, norms, mask


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
def test_calibration_loss_without_mask_matches_numpy(calibration_inputs, convention):
    d, norms, _ = calibration_inputs
    expected = np_calibration_batch(d, norms, np.ones_like(d), convention=convention)
    got = losses.calibration_ordinal_loss(d, norms, convention=convention)
    assert tuple(got.shape) == (3,)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
@pytest.mark.parametrize("standardize,temperature", [(False, 1.0), (True, 1.0), (False, 0.5), (True, 2.0)])
def test_calibration_loss_with_mask_matches_numpy(calibration_inputs, convention, standardize, temperature):
    d, norms, mask = calibration_inputs
    # Padded frames hold values that would dominate every softmax if they leaked in.
    d_padded = np.where(mask > 0, d, 1e4).astype(np.float32)
    norms_padded = np.where(mask > 0, norms, np.nan).astype(np.float32)
    kwargs = dict(convention=convention, standardize=standardize, temperature=temperature)
    expected = np_calibration_batch(d, norms, mask, **kwargs)
    got = losses.calibration_ordinal_loss(d_padded, norms_padded, mask, **kwargs)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-7)
    assert np.all(np.asarray(got) >= 0.0)


def test_calibration_loss_crossmodal_is_the_2n_concatenation(rng):
    num_frames = 6
    mask = right_padded_mask([6, 4], num_frames)
    d_a, d_v = (rng.gamma(2.0, 0.3, size=(2, num_frames)).astype(np.float32) for _ in range(2))
    n_a, n_v = (rng.uniform(0.5, 3.0, size=(2, num_frames)).astype(np.float32) for _ in range(2))
    got = losses.calibration_ordinal_loss(
        np.concatenate([d_a, d_v], axis=1),
        np.concatenate([n_a, n_v], axis=1),
        np.concatenate([mask, mask], axis=1),
    )
    assert tuple(got.shape) == (2,)
    # Reference: one softmax over the valid frames of both modalities together (2 * length entries).
    expected = [
        np_calibration(
            np.concatenate([d_a[b][mask[b] > 0], d_v[b][mask[b] > 0]]),
            np.concatenate([n_a[b][mask[b] > 0], n_v[b][mask[b] > 0]]),
        )
        for b in range(2)
    ]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)
    # It is not the sum of the two intramodal terms: the frames of both modalities compete.
    intramodal = np.asarray(losses.calibration_ordinal_loss(d_a, n_a, mask)) + np.asarray(
        losses.calibration_ordinal_loss(d_v, n_v, mask)
    )
    assert not np.allclose(np.asarray(got), intramodal, rtol=1e-3)


def test_calibration_loss_sequence_without_valid_frames_is_zero(calibration_inputs):
    d, norms, mask = calibration_inputs
    mask = mask.copy()
    mask[1] = 0.0
    for standardize in (False, True):
        got = np.asarray(losses.calibration_ordinal_loss(d, norms, mask, standardize=standardize))
        assert got[1] == 0.0
        assert np.all(np.isfinite(got))
        expected = np_calibration_batch(d, norms, mask, standardize=standardize)
        np.testing.assert_allclose(got[[0, 2]], expected[[0, 2]], rtol=1e-4)


def test_calibration_loss_rewards_the_convention_ordering():
    d = np.array([[0.1, 0.4, 0.9, 1.6]], np.float32)
    # Informativeness: a large error should come with a small norm (large 1/||sigma||).
    small_norm_at_large_error = np.array([[2.0, 1.5, 1.0, 0.5]], np.float32)
    large_norm_at_large_error = small_norm_at_large_error[:, ::-1].copy()
    info_good = float(losses.calibration_ordinal_loss(d, small_norm_at_large_error)[0])
    info_bad = float(losses.calibration_ordinal_loss(d, large_norm_at_large_error)[0])
    assert info_good < info_bad
    unc_good = float(losses.calibration_ordinal_loss(d, large_norm_at_large_error, convention="uncertainty")[0])
    unc_bad = float(losses.calibration_ordinal_loss(d, small_norm_at_large_error, convention="uncertainty")[0])
    assert unc_good < unc_bad


def test_calibration_loss_gradients_flow_to_sigma_only(calibration_inputs):
    d, norms, mask = calibration_inputs
    d_var = tf.Variable(d)
    norms_var = tf.Variable(norms)
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_sum(losses.calibration_ordinal_loss(d_var, norms_var, mask))
    zero = tf.UnconnectedGradients.ZERO
    grad_d = tape.gradient(loss, d_var, unconnected_gradients=zero).numpy()
    grad_s = tape.gradient(loss, norms_var, unconnected_gradients=zero).numpy()
    assert not np.any(grad_d)
    assert np.all(np.isfinite(grad_s))
    assert np.any(np.abs(grad_s[mask > 0]) > 1e-6)
    assert not np.any(grad_s[mask == 0])  # padded frames get no gradient


def test_calibration_loss_rejects_bad_arguments(calibration_inputs):
    d, norms, mask = calibration_inputs
    with pytest.raises(ValueError, match="convention"):
        losses.calibration_ordinal_loss(d, norms, mask, convention="confidence")
    with pytest.raises(ValueError, match="temperature"):
        losses.calibration_ordinal_loss(d, norms, mask, temperature=0.0)


# ---------------------------------------------------------------------------------------------------
# latent_kl_regulariser
# ---------------------------------------------------------------------------------------------------


def test_latent_kl_matches_numpy_and_tfp(rng):
    mu = rng.normal(size=(2, 5, 4)).astype(np.float32)
    sigma = rng.uniform(0.2, 2.0, size=(2, 5, 4)).astype(np.float32)
    mask = right_padded_mask([5, 2], 5)
    expected = np_latent_kl(mu, sigma)[mask > 0].mean()
    got = float(losses.latent_kl_regulariser(mu, sigma, mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)

    kl_tfp = tfd.kl_divergence(
        tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma),
        tfd.MultivariateNormalDiag(loc=tf.zeros_like(mu), scale_diag=tf.ones_like(sigma)),
    ).numpy()
    np.testing.assert_allclose(got, kl_tfp[mask > 0].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        float(losses.latent_kl_regulariser(mu, sigma)), np_latent_kl(mu, sigma).mean(), rtol=1e-5
    )


def test_latent_kl_is_zero_at_the_prior():
    mu = np.zeros((1, 3, 4), np.float32)
    sigma = np.ones((1, 3, 4), np.float32)
    assert float(losses.latent_kl_regulariser(mu, sigma)) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_give_finite_float32(rng, dtype, calibration_inputs):
    d, norms, mask = calibration_inputs
    y_true = rng.uniform(-1, 1, size=(3, 8)).astype(np.float32)
    y_pred = (0.8 * y_true + 0.1).astype(np.float32)
    logits = rng.normal(size=(3, 8, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(3, 8))
    mu = rng.normal(size=(3, 8, 4)).astype(np.float32)
    sigma = rng.uniform(0.2, 2.0, size=(3, 8, 4)).astype(np.float32)

    def low(x):
        return tf.cast(x, dtype)

    results = {
        "ccc": (
            losses.concordance_cc(low(y_true), low(y_pred), mask),
            np_ccc_population(
                low(y_true).numpy().astype(np.float64)[mask > 0], low(y_pred).numpy().astype(np.float64)[mask > 0]
            ),
        ),
        "emo": (losses.emotion_regression_loss(low(y_true), low(y_pred), mask), None),
        "ce": (losses.weighted_cross_entropy(labels, low(logits), [1.0, 2.0, 3.0], mask), None),
        "co": (losses.calibration_ordinal_loss(low(d * 100), low(norms), mask), None),
        "co_std": (losses.calibration_ordinal_loss(low(d), low(norms), mask, standardize=True), None),
        "kl": (losses.latent_kl_regulariser(low(mu), low(sigma), mask), None),
        "mean": (losses.masked_mean(low(y_true), mask), None),
    }
    for name, (value, reference) in results.items():
        assert value.dtype == tf.float32, name
        assert np.all(np.isfinite(value.numpy())), name
        if reference is not None:
            np.testing.assert_allclose(float(value), reference, rtol=1e-4)
    # The float16 calibration term equals the float32 one on the same (rounded) inputs.
    expected_co = np_calibration_batch(
        low(d * 100).numpy().astype(np.float64), low(norms).numpy().astype(np.float64), mask
    )
    np.testing.assert_allclose(results["co"][0].numpy(), expected_co, rtol=1e-3, atol=1e-6)


def _np_weight_calibration(d_a, d_v, w_v, mask):
    eps = 1e-7
    d_a, d_v, w_v = (np.asarray(x, np.float64) for x in (d_a, d_v, w_v))
    t = (d_a + 0.5 * eps) / (d_a + d_v + eps)
    w = np.clip(w_v, eps, 1 - eps)
    ce = -(t * np.log(w) + (1 - t) * np.log(1 - w))
    return float((ce * mask).sum() / mask.sum())


def test_fusion_weight_calibration_loss_matches_numpy(rng):
    d_a = rng.uniform(0.0, 2.0, (3, 7)).astype("float32")
    d_v = rng.uniform(0.0, 2.0, (3, 7)).astype("float32")
    w_v = rng.uniform(0.05, 0.95, (3, 7)).astype("float32")
    mask = (rng.uniform(size=(3, 7)) > 0.3).astype("float32")
    value = float(losses.fusion_weight_calibration_loss(d_a, d_v, w_v, mask))
    assert value == pytest.approx(_np_weight_calibration(d_a, d_v, w_v, mask), rel=1e-5)
    # Padded frames are ignored, whatever they hold.
    w_bad = np.where(mask > 0, w_v, np.nan).astype("float32")
    assert float(losses.fusion_weight_calibration_loss(d_a, d_v, w_bad, mask)) == pytest.approx(value, rel=1e-6)
    assert float(losses.fusion_weight_calibration_loss(d_a, d_v, w_v, np.zeros_like(mask))) == 0.0


def test_fusion_weight_calibration_loss_is_smallest_at_inverse_error_weights():
    d_a, d_v = np.array([[0.1]], "float32"), np.array([[0.9]], "float32")
    grid = np.linspace(0.01, 0.99, 99).astype("float32")
    values = [float(losses.fusion_weight_calibration_loss(d_a, d_v, np.array([[w]], "float32"))) for w in grid]
    # t_V = d_A / (d_A + d_V) = 0.1: the visual modality errs more, so it gets the small weight.
    assert grid[int(np.argmin(values))] == pytest.approx(0.1, abs=0.011)


def test_fusion_weight_calibration_loss_gradient_reaches_weights_not_distances():
    d_a = tf.Variable([[0.2, 0.4]])
    d_v = tf.Variable([[0.6, 0.1]])
    w_v = tf.Variable([[0.5, 0.5]])
    with tf.GradientTape() as tape:
        value = losses.fusion_weight_calibration_loss(d_a, d_v, w_v)
    grads = tape.gradient(value, [d_a, d_v, w_v])
    assert grads[0] is None and grads[1] is None
    g = grads[2].numpy()[0]
    assert g[0] > 0 and g[1] < 0  # visual errs more on frame 0 (push w_V down), less on frame 1


# ---------------------------------------------------------------------------------------------------
# Stacked forms: row g equals the per-series function on series g
# ---------------------------------------------------------------------------------------------------


def _stacked_regression(seed=0, g=5, b=3, t=8):
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, (g, b, t)).astype("float32")
    p = np.tanh(y + rng.normal(scale=0.5, size=(g, b, t))).astype("float32")
    mask = (rng.uniform(size=(g, b, t)) > 0.3).astype("float32")
    mask[1] = 0.0  # a series without a valid frame
    mask[2, :, :] = 1.0
    p[mask == 0] = np.nan  # padded frames may hold anything
    return y, p, mask


def test_stacked_concordance_and_regression_loss_equal_the_per_series_functions():
    y, p, mask = _stacked_regression()
    ccc = np.asarray(losses.stacked_concordance_cc(y, p, mask))
    loss = np.asarray(losses.stacked_emotion_regression_loss(y, p, mask))
    means = np.asarray(losses.stacked_masked_mean(np.square(np.nan_to_num(y - p)), mask))
    assert ccc.shape == loss.shape == means.shape == (len(y),)
    for g in range(len(y)):
        np.testing.assert_allclose(ccc[g], float(losses.concordance_cc(y[g], p[g], mask[g])), rtol=1e-6, atol=1e-7)
        expected = float(losses.emotion_regression_loss(y[g], p[g], mask[g]))
        np.testing.assert_allclose(loss[g], expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(means[g], float(losses.masked_mean(np.square(np.nan_to_num(y[g] - p[g])), mask[g])))
    assert ccc[1] == 0.0 and np.isfinite(loss).all()
    # Without a mask every element counts.
    full = np.asarray(losses.stacked_concordance_cc(y, np.nan_to_num(p)))
    np.testing.assert_allclose(full[3], float(losses.concordance_cc(y[3], np.nan_to_num(p[3]))), rtol=1e-6)


def test_stacked_regression_loss_gradients_equal_the_per_series_sum():
    y, p, mask = _stacked_regression(1)
    p = np.nan_to_num(p)
    p_var = tf.Variable(p)
    with tf.GradientTape() as tape:
        stacked = tf.reduce_sum(losses.stacked_emotion_regression_loss(y, p_var, mask))
    g_stacked = tape.gradient(stacked, p_var).numpy()
    with tf.GradientTape() as tape:
        looped = tf.add_n([losses.emotion_regression_loss(y[g], p_var[g], mask[g]) for g in range(len(y))])
    g_looped = tape.gradient(looped, p_var).numpy()
    np.testing.assert_allclose(float(stacked), float(looped), rtol=1e-6)
    np.testing.assert_allclose(g_stacked, g_looped, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
def test_stacked_weighted_cross_entropy_equals_the_per_series_function(weighted):
    rng = np.random.default_rng(2)
    g, b, t, c = 4, 3, 6, 3
    labels = rng.integers(0, c, (g, b, t)).astype("int32")
    labels[0, 0, -1] = -1  # a padding label
    logits = (2 * rng.normal(size=(g, b, t, c))).astype("float32")
    mask = (rng.uniform(size=(g, b, t)) > 0.3).astype("float32")
    mask[0, 0, -1] = 0.0
    weights = rng.uniform(0.2, 3.0, (g, c)).astype("float32") if weighted else None
    stacked = np.asarray(losses.stacked_weighted_cross_entropy(labels, logits, weights, mask))
    for row in range(g):
        expected = losses.weighted_cross_entropy(
            labels[row], logits[row], None if weights is None else weights[row], mask[row]
        )
        np.testing.assert_allclose(stacked[row], float(expected), rtol=1e-6)
    with pytest.raises(ValueError, match="class_weights"):
        losses.stacked_weighted_cross_entropy(labels, logits, np.ones((g, c + 1), "float32"), mask)
