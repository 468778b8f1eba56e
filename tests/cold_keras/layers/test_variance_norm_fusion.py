"""Tests of VarianceNormFusion against NumPy (paper Eq. 1-2) in both conventions."""

import keras
import numpy as np
import pytest

from cold_keras.layers import VarianceNormFusion
from tests.test_case import dtype_policy, run_layer_test, run_model_saving_test

B, T, K = 2, 6, 4


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    h_a, h_v = (rng.normal(size=(B, T, K)).astype("float32") for _ in range(2))
    s_a, s_v = (rng.uniform(0.01, 3.0, size=(B, T, K)).astype("float32") for _ in range(2))
    return [h_a, h_v, s_a, s_v]


def _np_fusion(h_a, h_v, s_a, s_v, convention):
    n_a = np.sqrt(np.sum(np.square(s_a.astype(np.float64)), axis=-1))
    n_v = np.sqrt(np.sum(np.square(s_v.astype(np.float64)), axis=-1))
    if convention == "informativeness":
        w_v = n_v / (n_v + n_a)
    else:
        w_v = n_a / (n_a + n_v)
    w_a = 1.0 - w_v
    return w_v[..., None] * h_v + w_a[..., None] * h_a, w_a, w_v, n_a, n_v


def test_layer_basics():
    run_layer_test(
        VarianceNormFusion,
        {"convention": "informativeness"},
        _inputs(),
        expected_output_shape=((B, T, K), (B, T), (B, T), (B, T), (B, T)),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
def test_matches_numpy(convention):
    inputs = _inputs()
    actual = VarianceNormFusion(convention)(inputs)
    expected = _np_fusion(*inputs, convention)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5, atol=1e-6)


def test_known_values_and_edge_cases():
    h_a = np.zeros((1, 3, 2), "float32")
    h_v = np.ones((1, 3, 2), "float32")
    # Frame 0: equal norms; frame 1: visual norm 3x the audio norm; frame 2: a tiny audio scale.
    s_a = np.array([[[1, 0], [1, 0], [1e-6, 0]]], "float32")
    s_v = np.array([[[0, 1], [3, 0], [1, 0]]], "float32")
    fused, w_a, w_v, _, _ = VarianceNormFusion()([h_a, h_v, s_a, s_v])
    np.testing.assert_allclose(np.asarray(w_v)[0], [0.5, 0.75, 1.0 / (1.0 + 1e-6)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(w_a + w_v), np.ones((1, 3)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fused)[0, :, 0], np.asarray(w_v)[0], rtol=1e-6)
    _, _, w_v_unc, _, _ = VarianceNormFusion("uncertainty")([h_a, h_v, s_a, s_v])
    np.testing.assert_allclose(np.asarray(w_v_unc) + np.asarray(w_v), np.ones((1, 3)), rtol=1e-6)


def test_float32_under_mixed_bfloat16_inputs():
    with dtype_policy("mixed_bfloat16"):
        layer = VarianceNormFusion()
        outputs = layer([keras.ops.cast(x, "bfloat16") for x in _inputs()])
    assert all(t.dtype == "float32" for t in outputs)


def test_invalid_convention():
    with pytest.raises(ValueError, match="convention"):
        VarianceNormFusion("precision")


def test_saving_round_trip(tmp_path):
    symbolic = [keras.Input((None, K)) for _ in range(4)]
    model = keras.Model(symbolic, VarianceNormFusion("uncertainty", name="fusion")(symbolic))
    run_model_saving_test(model, _inputs(), tmp_path)


@pytest.mark.parametrize("convention", ["informativeness", "uncertainty"])
def test_presence_gives_an_absent_modality_exactly_zero_weight(convention):
    inputs = _inputs(3)
    p_a = np.ones((B, T), "float32")
    p_v = np.ones((B, T), "float32")
    p_v[0, 1:3] = 0.0  # visual absent
    p_a[1, 0:2] = 0.0  # audio absent
    p_a[1, 4] = p_v[1, 4] = 0.0  # both absent
    fused, w_a, w_v, _, _ = (np.asarray(x) for x in VarianceNormFusion(convention)(inputs, presence=[p_a, p_v]))
    ref_h, ref_a, ref_v, _, _ = _np_fusion(*inputs, convention)
    both = (p_a == 1) & (p_v == 1)
    # Frames with both modalities keep Eq. 2's weights exactly.
    plain = VarianceNormFusion(convention)(inputs)
    np.testing.assert_array_equal(w_v[both], np.asarray(plain[2])[both])
    np.testing.assert_allclose(w_v[both], ref_v[both], rtol=1e-5)
    assert np.all(w_v[p_v == 0] == 0.0) and np.all(w_a[(p_v == 0) & (p_a == 1)] == 1.0)
    assert np.all(w_a[p_a == 0] == 0.0) and np.all(w_v[(p_a == 0) & (p_v == 1)] == 1.0)
    h_a, h_v = inputs[0], inputs[1]
    np.testing.assert_array_equal(fused[0, 1:3], h_a[0, 1:3])
    np.testing.assert_array_equal(fused[1, 0:2], h_v[1, 0:2])
    np.testing.assert_array_equal(fused[1, 4], np.zeros(K, "float32"))
