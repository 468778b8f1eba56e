"""Presence flags in every model: an absent modality gets weight 0 and its features change nothing."""

import keras
import numpy as np
import pytest

from cold_keras.layers import ColdLoss, VarianceNormFusion
from cold_keras.models import MODEL_NAMES, build_model, inference_model
from tests.test_case import run_model_saving_test

B, T, DA, DV = 2, 8, 5, 4
TINY = dict(gru_units=4, gru_layers=1, latent_dim=4, num_heads=2, transformer_dim=4, num_transformer_layers=1, seed=0)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    audio_present = np.ones((B, T), "float32")
    visual_present = np.ones((B, T), "float32")
    visual_present[0, 2:5] = 0.0
    audio_present[1, 4:7] = 0.0
    return {
        "audio": rng.normal(size=(B, T, DA)).astype("float32"),
        "visual": rng.normal(size=(B, T, DV)).astype("float32"),
        "mask": np.ones((B, T), "float32"),
        "audio_present": audio_present,
        "visual_present": visual_present,
        "valence": rng.uniform(-1, 1, (B, T)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (B, T)).astype("float32"),
    }


INPUTS = ("audio", "visual", "mask", "audio_present", "visual_present")


@pytest.fixture(scope="module")
def trained():
    """One tiny model per name, trained one step on batches with absent frames."""
    cache = {}

    def get(name):
        if name not in cache:
            model = build_model(name, audio_dim=DA, visual_dim=DV, lambda_weight=1.0, **TINY)
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
            model.fit(_batch(), epochs=1, batch_size=B, verbose=0)
            cache[name] = model
        return cache[name]

    return get


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_features_of_absent_frames_change_nothing(trained, name):
    infer = inference_model(trained(name))
    data = {k: _batch()[k] for k in INPUTS}
    changed = {k: v.copy() for k, v in data.items()}
    rng = np.random.default_rng(5)
    for modality in ("audio", "visual"):
        absent = data[f"{modality}_present"] == 0
        changed[modality][absent] = 100.0 * rng.normal(size=changed[modality][absent].shape)
    before = infer.predict_on_batch(data)
    after = infer.predict_on_batch(changed)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    # ... while the same change on present frames does change the output (the check can fail).
    moved = {k: v.copy() for k, v in data.items()}
    moved["visual" if name != "audio" else "audio"][1, 1] += 100.0
    assert not np.array_equal(infer.predict_on_batch(moved)["valence"], before["valence"])


@pytest.mark.parametrize("name", ["cold_fusion", "prediction_fusion"])
def test_absent_modality_weight_is_exactly_zero(trained, name):
    data = _batch()
    outputs = inference_model(trained(name)).predict_on_batch({k: data[k] for k in INPUTS})
    w_a, w_v = outputs["audio_weight"], outputs["visual_weight"]
    assert np.all(w_v[data["visual_present"] == 0] == 0.0)
    assert np.all(w_a[data["visual_present"] == 0] == 1.0)
    assert np.all(w_a[data["audio_present"] == 0] == 0.0)
    assert np.all(w_v[data["audio_present"] == 0] == 1.0)
    both = (data["audio_present"] == 1) & (data["visual_present"] == 1)
    assert np.all((w_v[both] > 0.0) & (w_v[both] < 1.0))


@pytest.mark.parametrize("name", ["cold_fusion", "feature_fusion"])
def test_flags_may_be_left_out_and_mean_all_present(trained, name):
    infer = inference_model(trained(name))
    data = _batch()
    base = {k: data[k] for k in ("audio", "visual", "mask")}
    ones = np.ones((B, T), "float32")
    with_flags = infer.predict_on_batch({**base, "audio_present": ones, "visual_present": ones})
    without = infer.predict_on_batch(base)
    called = infer(base, training=False)
    for key in with_flags:
        np.testing.assert_array_equal(without[key], with_flags[key])
        np.testing.assert_allclose(np.asarray(called[key]), with_flags[key], rtol=1e-6, atol=1e-6)
    # Training on batches without the flags works too.
    model = trained(name)
    targets = {k: data[k] for k in ("valence", "arousal")}
    history = model.fit({**base, **targets}, epochs=1, batch_size=B, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_absent_frames_leave_the_unimodal_and_calibration_terms():
    """The audio branch's loss ignores frames without audio: changing its targets there changes nothing
    but the fused term, which still sees the visual modality."""
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, lambda_weight=1.0, **TINY)
    loss = model.get_layer("cold_loss")
    data = _batch()
    infer = inference_model(model)
    outputs = infer({k: data[k] for k in INPUTS}, training=False)
    presence = {"audio": data["audio_present"], "visual": data["visual_present"]}
    targets = {k: data[k] for k in ("valence", "arousal")}
    mask = keras.ops.convert_to_tensor(data["mask"])
    audio_only = ("audio",)
    changed_outputs = dict(outputs)
    absent = data["audio_present"] == 0
    changed_outputs["audio_valence"] = np.where(absent, 5.0, np.asarray(outputs["audio_valence"])).astype("float32")
    loss.branches = audio_only
    try:
        same = float(loss.emotion_loss(targets, outputs, mask, presence))
        moved = float(loss.emotion_loss(targets, changed_outputs, mask, presence))
        unmasked = float(loss.emotion_loss(targets, changed_outputs, mask))
    finally:
        loss.branches = ("", "audio", "visual")
    assert moved == pytest.approx(same, rel=1e-6)
    assert unmasked != pytest.approx(same, rel=1e-3)
    latents = {}
    for modality in ("audio", "visual"):
        latents[f"{modality}_mu"] = np.zeros((B, T, 4), "float32")
        latents[f"{modality}_sigma"] = np.ones((B, T, 4), "float32")
    terms = loss.cold_terms(targets, outputs, latents, mask, presence)
    changed_terms = loss.cold_terms(targets, changed_outputs, latents, mask, presence)
    for a, b in zip(terms, changed_terms):
        assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_options_round_trip_through_keras_files(tmp_path):
    options = dict(
        weight_convention="uncertainty",
        calibration_standardize=True,
        calibration_temperature=0.5,
        lambda_weight=2.5,
        lambda_co_cross=0.25,
    )
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, **options)
    data = _batch()
    reloaded = run_model_saving_test(model, data, tmp_path)
    loss = reloaded.get_layer("cold_loss")
    assert isinstance(loss, ColdLoss)
    assert (loss.weight_convention, loss.standardize, loss.temperature, loss.lambda_weight, loss.lambda_co_cross) == (
        "uncertainty",
        True,
        0.5,
        2.5,
        0.25,
    )
    fusion = reloaded.get_layer("variance_norm_fusion")
    assert isinstance(fusion, VarianceNormFusion) and fusion.convention == "uncertainty"
    expected = inference_model(model).predict_on_batch({k: data[k] for k in INPUTS})
    actual = inference_model(reloaded).predict_on_batch({k: data[k] for k in INPUTS})
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6)
