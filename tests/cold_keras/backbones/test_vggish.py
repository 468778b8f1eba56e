"""VGGish: layer contract on log-mel patches, VGGish's own layout, batch norm option, freezing."""

import numpy as np

from cold_keras.backbones import VGGish
from tests.test_case import run_layer_test

TINY = {"filters": (4, 8), "dense_units": 8, "embedding_dim": 5}


def _patches(seed=0, shape=(2, 3, 12, 8)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_contract_and_float32_output_under_mixed_precision():
    run_layer_test(
        VGGish,
        TINY,
        _patches(),
        expected_output_shape=(2, 3, 5),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_default_layout_is_vggish():
    backbone = VGGish()
    assert backbone.convs_per_block == (1, 1, 2, 2) and backbone.filters == (64, 128, 256, 512)
    assert backbone.dense_units == 4096 and backbone.embedding_dim == 128
    # VGGish flattens the last map: the first dense layer sees every position of a 96 x 64 patch.
    backbone.build((None, 96, 64))
    assert tuple(backbone.fc_1.kernel.shape) == (6 * 4 * 512, 4096)


def test_batch_norm_weights_are_saved_and_frozen(tmp_path):
    source = VGGish(**TINY, batch_norm=True)
    patches = _patches(1)
    source(patches, training=True)  # moves the batch statistics away from their initial values
    expected = np.asarray(source(patches, training=False))
    path = source.save_weights_file(tmp_path / "vggish.npz")
    with np.load(path) as archive:
        assert {"bn_1_1/gamma", "bn_1_1/moving_mean", "bn_2_1/moving_variance"} <= set(archive.files)
        assert "conv_1_1/bias" not in archive.files
    fresh = VGGish(**TINY, batch_norm=True)
    fresh(patches)
    fresh.load_weights_file(path)
    np.testing.assert_allclose(np.asarray(fresh(patches, training=False)), expected, rtol=1e-5, atol=1e-6)
    assert sorted({w.path.split("/")[-2] for w in fresh.trainable_weights}) == ["embedding", "fc_2"]
    # Frozen batch norms run in inference mode even when training.
    np.testing.assert_allclose(np.asarray(fresh(patches, training=True)), expected, rtol=1e-5, atol=1e-6)
