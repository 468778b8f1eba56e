"""Tests of CrossmodalTransformerBlock against a NumPy implementation of the block."""

import keras
import numpy as np
import pytest

from cold_keras.layers import CrossmodalTransformerBlock
from tests.test_case import run_layer_test, run_model_saving_test

B, T_T, T_S, D, D_S, H = 2, 5, 6, 8, 6, 2


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(B, T_T, D)).astype("float32")
    source = rng.normal(size=(B, T_S, D_S)).astype("float32")
    mask = np.ones((B, T_S), "float32")
    mask[1, 3:] = 0.0
    return target, source, mask


def _np_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _np_block(layer, target, source, mask):
    w = {v.path.split("/", 1)[1]: np.asarray(v, np.float64) for v in layer.weights}
    target = target.astype(np.float64)
    source = source.astype(np.float64)
    q_in = _np_layer_norm(target, w["target_norm/gamma"], w["target_norm/beta"])
    s_in = _np_layer_norm(source, w["source_norm/gamma"], w["source_norm/beta"])
    att = "crossmodal_attention"
    q = np.einsum("btd,dhk->bthk", q_in, w[f"{att}/query/kernel"]) + w[f"{att}/query/bias"]
    k = np.einsum("bsd,dhk->bshk", s_in, w[f"{att}/key/kernel"]) + w[f"{att}/key/bias"]
    v = np.einsum("bsd,dhk->bshk", s_in, w[f"{att}/value/kernel"]) + w[f"{att}/value/bias"]
    scores = np.einsum("bthk,bshk->bhts", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p = p / p.sum(axis=-1, keepdims=True)
    context = np.einsum("bhts,bshk->bthk", p, v)
    attended = np.einsum("bthk,hkd->btd", context, w[f"{att}/attention_output/kernel"])
    x = target + attended + w[f"{att}/attention_output/bias"]
    hidden = _np_layer_norm(x, w["ffn_norm/gamma"], w["ffn_norm/beta"])
    hidden = np.maximum(hidden @ w["ffn_hidden/kernel"] + w["ffn_hidden/bias"], 0.0)
    return x + hidden @ w["ffn_output/kernel"] + w["ffn_output/bias"]


def test_layer_basics():
    target, source, mask = _inputs()
    run_layer_test(
        CrossmodalTransformerBlock,
        {"num_heads": H, "ff_dim": 12, "dropout": 0.1},
        [target, source],
        call_kwargs={"mask": mask},
        expected_output_shape=(B, T_T, D),
        expected_output_dtype="float32",
    )


def test_matches_numpy_with_key_padding_mask():
    target, source, mask = _inputs()
    layer = CrossmodalTransformerBlock(num_heads=H, ff_dim=12, dropout=0.0)
    actual = np.asarray(layer([target, source], mask=mask))
    # Random LayerNorm scales and biases so that every parameter matters.
    rng = np.random.default_rng(5)
    layer.set_weights([w + 0.1 * rng.normal(size=w.shape) for w in layer.get_weights()])
    actual = np.asarray(layer([target, source], mask=mask))
    np.testing.assert_allclose(actual, _np_block(layer, target, source, mask), rtol=1e-4, atol=1e-4)


def test_padded_source_frames_are_ignored():
    target, source, mask = _inputs()
    layer = CrossmodalTransformerBlock(num_heads=H, dropout=0.0)
    before = np.asarray(layer([target, source], mask=mask))
    changed = source.copy()
    changed[1, 3:] = 50.0
    after = np.asarray(layer([target, changed], mask=mask))
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    unmasked = np.asarray(layer([target, changed]))
    assert np.abs(unmasked[1] - before[1]).max() > 1e-3


def test_indivisible_size_is_rejected():
    target, source, _ = _inputs()
    with pytest.raises(ValueError, match="divisible"):
        CrossmodalTransformerBlock(num_heads=3)([target, source])


def test_saving_round_trip(tmp_path):
    target, source, mask = _inputs()
    symbolic = [keras.Input((None, D)), keras.Input((None, D_S)), keras.Input((None,))]
    out = CrossmodalTransformerBlock(num_heads=H, name="block")(symbolic[:2], mask=symbolic[2])
    model = keras.Model(symbolic, out)
    run_model_saving_test(model, [target, source, mask], tmp_path)
