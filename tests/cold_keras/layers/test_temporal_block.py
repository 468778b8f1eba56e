"""Tests of TemporalBlock: shapes, masking, empty sequences, saving, config."""

import keras
import numpy as np
import pytest

from cold_keras.layers import TemporalBlock
from cold_keras.layers.temporal_block import frame_mask_to_bool
from tests.test_case import run_layer_test, run_model_saving_test

B, T, D = 2, 7, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), "float32")
    mask[1, 4:] = 0.0
    return x, mask


def test_layer_basics():
    x, mask = _data()
    run_layer_test(
        TemporalBlock,
        {"output_dim": 4, "units": 5, "num_layers": 2, "dropout": 0.5},
        x,
        call_kwargs={"mask": mask},
        expected_output_shape=(B, T, 4),
        expected_output_dtype="float32",
    )


def test_without_output_layer_returns_gru_features():
    x, mask = _data()
    block = TemporalBlock(None, units=5, num_layers=1)
    assert tuple(block(x, mask=mask).shape) == (B, T, 10)
    assert block.output_layer is None
    assert [layer.name for layer in block.grus] == ["bigru_1"]


def test_padded_frames_do_not_change_valid_outputs():
    x, mask = _data()
    block = TemporalBlock(4, units=5, dropout=0.0)
    changed = x.copy()
    changed[1, 4:] = 100.0 * np.random.default_rng(1).normal(size=(T - 4, D))
    before = np.asarray(block(x, mask=mask))
    after = np.asarray(block(changed, mask=mask))
    np.testing.assert_allclose(after[1, :4], before[1, :4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-6)
    # Without the mask the padded frames do reach the valid ones (through the backward GRU).
    unmasked = np.asarray(block(changed))
    assert np.abs(unmasked[1, :4] - before[1, :4]).max() > 1e-3


def test_float_and_bool_masks_agree():
    x, mask = _data()
    block = TemporalBlock(4, units=5)
    np.testing.assert_allclose(np.asarray(block(x, mask=mask)), np.asarray(block(x, mask=mask > 0.5)), rtol=1e-6)


def test_all_masked_sequence_is_finite_and_keeps_first_frame():
    x, mask = _data()
    mask[0] = 0.0
    fixed = np.asarray(frame_mask_to_bool(mask))
    expected = mask > 0.5
    expected[0, 0] = True
    np.testing.assert_array_equal(fixed, expected)
    out = np.asarray(TemporalBlock(4, units=5)(x, mask=mask))
    assert np.all(np.isfinite(out))


def test_saving_round_trip(tmp_path):
    x, mask = _data()
    inputs = keras.Input((None, D))
    mask_in = keras.Input((None,))
    outputs = TemporalBlock(4, units=5, name="block")(inputs, mask=mask_in)
    model = keras.Model([inputs, mask_in], outputs)
    reloaded = run_model_saving_test(model, [x, mask], tmp_path)
    assert isinstance(reloaded.get_layer("block"), TemporalBlock)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output_dim": 0}, "output_dim"),
        ({"output_dim": 4, "units": 0}, "units"),
        ({"output_dim": 4, "num_layers": 0}, "num_layers"),
        ({"output_dim": 4, "dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemporalBlock(**kwargs)
