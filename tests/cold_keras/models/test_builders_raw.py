"""build_raw_model: every model name on raw inputs, saving, pretrained backbones, mixed precision."""

import keras
import numpy as np
import pytest

from cold_keras.backbones import BackboneWeightsError, FaceCNN
from cold_keras.models import MODEL_NAMES, build_raw_model, inference_model
from tests.test_case import dtype_policy, run_model_saving_test

B, T, FACE, PATCH = 2, 5, (16, 16, 3), (10, 6)
VISUAL = {"filters": (4, 8), "dense_units": 8, "embedding_dim": 12}
AUDIO = {"filters": (4,), "dense_units": 8, "embedding_dim": 6}
TINY = dict(
    gru_units=4,
    gru_layers=1,
    latent_dim=4,
    num_heads=2,
    transformer_dim=4,
    num_transformer_layers=1,
    seed=0,
    visual_backbone=VISUAL,
    audio_backbone=AUDIO,
)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), "float32")
    mask[1, 3:] = 0.0
    return {
        "audio": rng.normal(size=(B, T) + PATCH).astype("float32"),
        "visual": rng.uniform(0, 255, (B, T) + FACE).astype("float32"),
        "mask": mask,
        "valence": rng.uniform(-1, 1, (B, T)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (B, T)).astype("float32"),
    }


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_name_takes_raw_inputs(name):
    model = build_raw_model(name, face_shape=FACE, patch_shape=PATCH, **TINY)
    assert model.get_layer("visual").output.shape == (None, None) + FACE
    assert model.get_layer("audio").output.shape == (None, None) + PATCH
    infer = inference_model(model)
    assert {"valence", "arousal"} <= set(infer.output)
    if name in ("cold_fusion", "prediction_fusion", "context_fusion"):
        assert {"audio_valence", "visual_arousal"} <= set(infer.output)
    backbones = {layer.name for layer in model.layers} & {"visual_backbone", "audio_backbone"}
    expected = {"audio": {"audio_backbone"}, "visual": {"visual_backbone"}}.get(
        name, {"visual_backbone", "audio_backbone"}
    )
    assert backbones == expected  # a unimodal model leaves the other backbone out of its graph


def test_training_step_and_keras_round_trip(tmp_path):
    model = build_raw_model(
        "feature_fusion",
        face_shape=FACE,
        patch_shape=PATCH,
        visual_norm=([120.0] * 3, [3000.0] * 3),
        audio_norm=([0.0] * 6, [1.0] * 6),
        **TINY,
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    before = [np.array(w) for w in model.get_layer("visual_backbone").trainable_weights]
    history = model.fit(_batch(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.get_layer("visual_backbone").trainable_weights
    assert all(not np.array_equal(b, np.array(a)) for b, a in zip(before, after))  # the backbone trains
    reloaded = run_model_saving_test(
        inference_model(model), {k: _batch(1)[k] for k in ("audio", "visual", "mask")}, tmp_path
    )
    assert isinstance(reloaded.get_layer("visual_backbone"), FaceCNN)


def test_pretrained_backbone_weights_are_loaded_and_frozen(tmp_path):
    source = FaceCNN(**VISUAL)
    batch = _batch()
    source(batch["visual"])
    path = source.save_weights_file(tmp_path / "face.npz")
    model = build_raw_model("visual", face_shape=FACE, patch_shape=PATCH, visual_backbone_weights=path, **TINY)
    backbone = model.get_layer("visual_backbone")
    np.testing.assert_allclose(
        np.asarray(backbone(batch["visual"])), np.asarray(source(batch["visual"])), rtol=1e-6, atol=1e-6
    )
    assert sorted({w.path.split("/")[-2] for w in backbone.trainable_weights}) == ["embedding", "fc_2"]
    # The model saves the freezing with it.
    model.save(tmp_path / "visual.keras")
    reloaded = keras.saving.load_model(tmp_path / "visual.keras").get_layer("visual_backbone")
    assert sorted({w.path.split("/")[-2] for w in reloaded.trainable_weights}) == ["embedding", "fc_2"]
    with pytest.raises(BackboneWeightsError, match="fc_1/kernel has shape"):
        build_raw_model(
            "visual",
            face_shape=FACE,
            patch_shape=PATCH,
            visual_backbone_weights=path,
            **{**TINY, "visual_backbone": {**VISUAL, "dense_units": 16}},
        )


def test_mixed_bfloat16_keeps_features_and_outputs_float32():
    with dtype_policy("mixed_bfloat16"):
        model = build_raw_model("cold_fusion", face_shape=FACE, patch_shape=PATCH, **TINY)
        outputs = inference_model(model)({k: _batch()[k] for k in ("audio", "visual", "mask")})
    assert model.get_layer("visual_backbone").compute_dtype == "bfloat16"
    assert model.get_layer("visual_backbone").output.dtype == "float32"
    for key, value in outputs.items():
        assert value.dtype == "float32", key
        assert np.all(np.isfinite(np.asarray(value))), key


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="face_shape must be"):
        build_raw_model("audio", face_shape=(16, 16), patch_shape=PATCH, **TINY)
    with pytest.raises(ValueError, match="patch_shape must be"):
        build_raw_model("audio", face_shape=FACE, patch_shape=(10, 6, 1), **TINY)
