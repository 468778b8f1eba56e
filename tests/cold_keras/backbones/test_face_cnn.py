"""FaceCNN: layer contract, per-frame application, weight files and freezing."""

import numpy as np
import pytest

from cold_keras.backbones import BackboneWeightsError, FaceCNN
from tests.test_case import run_layer_test

TINY = {"filters": (4, 8), "dense_units": 8, "embedding_dim": 6}


def _faces(seed=0, shape=(2, 3, 16, 16, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_contract_and_float32_output_under_mixed_precision():
    run_layer_test(
        FaceCNN,
        TINY,
        _faces(),
        expected_output_shape=(2, 3, 6),
        expected_output_dtype="float32",
        mixed_precision_output_dtype="float32",
    )


def test_every_frame_is_embedded_on_its_own():
    backbone = FaceCNN(**TINY)
    faces = _faces()
    together = np.asarray(backbone(faces))
    alone = np.asarray(backbone(faces.reshape(6, 16, 16, 3))).reshape(2, 3, 6)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    # Changing one frame changes only that frame's feature.
    changed = faces.copy()
    changed[1, 2] += 1.0
    diff = np.abs(np.asarray(backbone(changed)) - together).max(axis=-1)
    assert diff[1, 2] > 0 and np.count_nonzero(diff) == 1


def test_weights_file_round_trip_freezes_all_but_the_last_two_dense_layers(tmp_path):
    source = FaceCNN(**TINY, name="source")
    faces = _faces(1)
    expected = np.asarray(source(faces))
    path = source.save_weights_file(tmp_path / "face.npz")
    with np.load(path) as archive:
        assert "conv_1_1/kernel" in archive.files and archive["embedding/kernel"].shape == (8, 6)
        assert "bn_2_1/moving_variance" in archive.files  # batch normalisation by default

    fresh = FaceCNN(**TINY, name="fresh")
    fresh(faces)
    assert not np.allclose(np.asarray(fresh(faces)), expected)
    fresh.load_weights_file(path)
    np.testing.assert_allclose(np.asarray(fresh(faces)), expected, rtol=1e-6, atol=1e-6)
    trainable = sorted({w.path.split("/")[-2] for w in fresh.trainable_weights})
    assert trainable == ["embedding", "fc_2"]
    frozen = {w.path.split("/")[-2] for w in fresh.non_trainable_weights}
    assert frozen == {"conv_1_1", "bn_1_1", "conv_2_1", "bn_2_1", "fc_1"}
    # The freezing survives a config round trip (a reloaded .keras model keeps it).
    assert FaceCNN.from_config(fresh.get_config()).freeze_trunk


def test_weights_file_that_does_not_fit_names_the_file_and_the_problem(tmp_path):
    backbone = FaceCNN(**TINY)
    backbone(_faces())
    trainable = len(backbone.trainable_weights)
    with pytest.raises(BackboneWeightsError, match="does not exist") as error:
        backbone.load_weights_file(tmp_path / "missing.npz")
    assert error.value.path == str(tmp_path / "missing.npz")

    wider = FaceCNN(**{**TINY, "dense_units": 16})
    wider(_faces())
    wider.save_weights_file(tmp_path / "wider.npz")
    with pytest.raises(BackboneWeightsError, match=r"fc_1/kernel has shape \(8, 16\), the .* needs \(8, 8\)"):
        backbone.load_weights_file(tmp_path / "wider.npz")

    deeper = FaceCNN(**{**TINY, "filters": (4, 8, 8)})
    deeper(_faces())
    deeper.save_weights_file(tmp_path / "deeper.npz")
    with pytest.raises(BackboneWeightsError, match="unknown entries conv_3_1/kernel"):
        backbone.load_weights_file(tmp_path / "deeper.npz")

    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(BackboneWeightsError, match="not a NumPy .npz"):
        backbone.load_weights_file(tmp_path / "text.npz")
    assert len(backbone.trainable_weights) == trainable and not backbone.freeze_trunk  # nothing frozen


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        FaceCNN(filters=(4, 0))
    with pytest.raises(ValueError, match="convs_per_block needs one value per block"):
        FaceCNN(filters=(4, 8), convs_per_block=(1, 2, 3))
