"""COLD fusion's reliability options: no corruption flag reaches the predictions, the terms match
NumPy, the learned re-weighting starts at the paper's weights and the guard switches branches."""

import keras
import numpy as np
import pytest

from cold_keras.layers.reliability import (
    Atypicality,
    atypicality_reference,
    atypicality_signals,
    novelty_features,
    reliability_supervision_loss,
)
from cold_keras.models import build_model, inference_model
from tests.cold_keras.layers.reliability_references import atypicality_signals as np_atypicality_signals

B, T, DA, DV = 2, 10, 3, 4
TINY = dict(gru_units=4, gru_layers=1, latent_dim=4, seed=0)
ALL = dict(lambda_reliability=1.0, reliability_novelty=True, reliability_agreement=True, fusion_guard=True)
FLAGS = ("audio_corruption_target", "visual_corruption_target")


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.normal(size=(B, T, DA)).astype("float32"),
        "visual": rng.normal(size=(B, T, DV)).astype("float32"),
        "mask": np.ones((B, T), "float32"),
        "valence": rng.uniform(-1, 1, (B, T)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (B, T)).astype("float32"),
    }


@pytest.fixture(scope="module")
def model():
    return build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, **ALL)


def test_inference_needs_no_flag_and_outputs_do_not_depend_on_them(model):
    infer = inference_model(model)
    assert sorted(infer.input) == ["audio", "audio_present", "mask", "visual", "visual_present"]
    batch = _batch(seed=2)
    features = {key: batch[key] for key in ("audio", "visual", "mask")}
    reference = {key: np.asarray(value) for key, value in infer(features).items()}
    ones, zeros = np.ones((B, T), "float32"), np.zeros((B, T), "float32")
    for audio_flags, visual_flags in ((ones, zeros), (zeros, ones)):
        outputs = model({**batch, FLAGS[0]: audio_flags, FLAGS[1]: visual_flags}, training=False)
        for key, value in reference.items():
            np.testing.assert_allclose(np.asarray(outputs[key]), value, rtol=1e-6, atol=1e-6)


def test_the_paper_graph_has_none_of_the_options():
    paper = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    names = {layer.name for layer in paper.layers}
    assert not names & {"reliability_weighting", "fusion_guard", "audio_novelty", "prediction_agreement", *FLAGS}
    assert not hasattr(paper.get_layer("cold_loss"), "loss_reliability_tracker")


def test_reliability_loss_matches_numpy():
    rng = np.random.default_rng(3)
    w = rng.uniform(0.05, 0.95, (3, 7))
    c_a = (rng.uniform(size=(3, 7)) < 0.4).astype("float32")
    c_v = (rng.uniform(size=(3, 7)) < 0.4).astype("float32")
    mask = (rng.uniform(size=(3, 7)) < 0.9).astype("float32")
    one = ((c_a + c_v) == 1) & (mask > 0)
    target = c_a[one]  # audio corrupted alone: trust visual (1); visual alone: 0
    expected = -np.mean(target * np.log(w[one]) + (1 - target) * np.log(1 - w[one]))
    got = float(reliability_supervision_loss(w, c_a, c_v, mask))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(reliability_supervision_loss(w, np.zeros_like(c_a), np.zeros_like(c_v))) == 0.0


def test_novelty_matches_numpy():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(2, 6, 5)).astype("float32")
    mask = np.ones((2, 6), "float32")
    mask[1, 4:] = 0
    got = np.asarray(novelty_features(z, mask))
    level = np.log1p((z**2).mean(-1))
    previous = np.concatenate([z[:, :1], z[:, :-1]], axis=1)
    motion = np.log(0.01 + ((z - previous) ** 2).mean(-1))
    np.testing.assert_allclose(got, np.stack([level, motion], -1) * mask[..., None], rtol=1e-5, atol=1e-6)


def test_reweighting_starts_at_the_paper_weights():
    fresh = build_model(
        "cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, reliability_novelty=True, reliability_agreement=True
    )
    out = inference_model(fresh)({k: v for k, v in _batch(5).items() if k in ("audio", "visual", "mask")})
    n_a, n_v = np.asarray(out["audio_sigma_norm"]), np.asarray(out["visual_sigma_norm"])
    np.testing.assert_allclose(np.asarray(out["visual_weight"]), n_v / (n_a + n_v), rtol=1e-4, atol=1e-5)


def test_the_guard_switches_a_dimension_to_a_branch_and_is_saved(model, tmp_path):
    guard = model.get_layer("fusion_guard")
    infer = inference_model(model)
    features = {k: v for k, v in _batch(6).items() if k in ("audio", "visual", "mask")}
    try:
        guard.choose(["audio", "fused"])
        out = infer(features)
        np.testing.assert_allclose(np.asarray(out["valence"]), np.asarray(out["audio_valence"]), atol=1e-6)
        assert not np.allclose(np.asarray(out["arousal"]), np.asarray(out["audio_arousal"]))
        path = tmp_path / "guarded.keras"
        model.save(path)
        assert keras.saving.load_model(path).get_layer("fusion_guard").chosen() == ["audio", "fused"]
        with pytest.raises(ValueError, match="choose needs 2"):
            guard.choose(["audio"])
    finally:
        guard.choose(["fused", "fused"])


REFERENCE = {"center": [0.7, -0.5, -1.0], "scale": [0.2, 0.3, 0.4]}


def test_atypicality_matches_numpy():
    rng = np.random.default_rng(7)
    z = rng.normal(size=(2, 12, 3)).astype("float32")
    z[0, 6:] = z[0, 6]  # frozen
    mask = np.ones((2, 12), "float32")
    mask[1, 9:] = 0
    signals = np_atypicality_signals(z, mask, radius=2)
    np.testing.assert_allclose(np.asarray(atypicality_signals(z, mask, radius=2)), signals, rtol=1e-4, atol=1e-5)
    got = np.asarray(Atypicality(**REFERENCE, radius=2, margin=1.5)(z, mask))
    score = np.max(np.abs(signals - REFERENCE["center"]) / REFERENCE["scale"], axis=-1, keepdims=True)
    np.testing.assert_allclose(got, np.maximum(score - 1.5, 0) * mask[..., None], rtol=1e-4, atol=1e-5)
    reference = atypicality_reference(signals[1, :9])
    q25, q50, q75 = np.percentile(signals[1, :9], [25, 50, 75], axis=0)
    np.testing.assert_allclose(reference["center"], q50)
    np.testing.assert_allclose(reference["scale"], np.maximum(q75 - q25, 1e-3))
    with pytest.raises(ValueError, match="scales must be > 0"):
        Atypicality(center=[0, 0, 0], scale=[1, 0, 1])


def test_atypicality_moves_weight_away_from_the_atypical_modality_from_both_sides(tmp_path):
    references = {"audio_atypicality": REFERENCE, "visual_atypicality": REFERENCE}
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, reliability_atypicality=True, **references)
    infer = inference_model(model)
    assert sorted(infer.input) == ["audio", "audio_present", "mask", "visual", "visual_present"]
    rng = np.random.default_rng(8)
    batch = {k: v for k, v in _batch(9).items() if k in ("audio", "visual", "mask")}
    base = infer(batch)
    weights = {}
    for kind in ("noise", "frozen"):
        visual = batch["visual"].copy()
        visual[:, 3:8] = 6.0 * rng.normal(size=(B, 5, DV)) if kind == "noise" else visual[:, 3:4]
        out = infer({**batch, "visual": visual})
        paper = np.asarray(out["visual_sigma_norm"]) / (
            np.asarray(out["visual_sigma_norm"]) + np.asarray(out["audio_sigma_norm"])
        )
        atypical = np.asarray(model.get_layer("visual_atypicality")(visual, batch["mask"]))[..., 0]
        alpha = np.log(2.0)  # softplus(0)
        audio_score = np.asarray(model.get_layer("audio_atypicality")(batch["audio"], batch["mask"]))[..., 0]
        expected = 1 / (1 + np.exp(-(np.log(paper / (1 - paper)) + alpha * audio_score - alpha * atypical)))
        np.testing.assert_allclose(np.asarray(out["visual_weight"]), expected, rtol=1e-4, atol=1e-5)
        weights[kind] = (atypical, np.asarray(out["visual_weight"]), paper)
    noise_score, noise_weight, noise_paper = weights["noise"]
    assert noise_score[:, 4:7].min() > 1.0 and np.all(noise_weight[:, 4:7] < noise_paper[:, 4:7])
    frozen_score = weights["frozen"][0]
    assert frozen_score[:, 4:7].min() > 0.0  # a still stream is atypical too (motion far below)
    assert base["visual_weight"].shape == (B, T)
    model.save(tmp_path / "atypicality.keras")
    saved = keras.saving.load_model(tmp_path / "atypicality.keras")
    np.testing.assert_allclose(
        np.asarray(inference_model(saved)(batch)["visual_weight"]), np.asarray(base["visual_weight"]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="needs audio_atypicality"):
        build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, reliability_atypicality=True)


def _np_fallback(fused, audio, visual, w_audio, w_visual, threshold):
    """The per-frame fallback, written out in NumPy."""
    alpha = np.clip((np.maximum(w_audio, w_visual) - threshold) / (1 - threshold), 0, 1)
    audio_trusted = w_audio > w_visual
    if fused.ndim == alpha.ndim + 1:  # classification logits
        alpha, audio_trusted = alpha[..., None], audio_trusted[..., None]
    return fused + alpha * (np.where(audio_trusted, audio, visual) - fused)


def test_the_frame_fallback_matches_numpy_in_the_model_and_alone():
    from cold_keras.layers import FrameFallback

    features = {k: v for k, v in _batch(8).items() if k in ("audio", "visual", "mask")}
    guarded = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY, fallback_threshold=0.5)
    plain = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    plain.set_weights(guarded.get_weights())  # the fallback has no weights
    out = {k: np.asarray(v) for k, v in inference_model(guarded)(features).items()}
    before = {k: np.asarray(v) for k, v in inference_model(plain)(features).items()}
    w_a, w_v = out["audio_weight"], out["visual_weight"]
    for dim in ("valence", "arousal"):
        expected = _np_fallback(before[dim], out[f"audio_{dim}"], out[f"visual_{dim}"], w_a, w_v, 0.5)
        np.testing.assert_allclose(out[dim], expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(out[dim], before[dim])  # at 0.5 every unbalanced frame moves
    rng = np.random.default_rng(9)
    w_a = np.array([[0.5, 0.7, 0.9, 1.0, 0.0]], "float32")
    fused, audio, visual = (rng.normal(size=(1, 5, 3)).astype("float32") for _ in range(3))
    layer = FrameFallback(0.75)
    got = np.asarray(layer([[fused, audio, visual]], [w_a, 1 - w_a])[0])
    np.testing.assert_allclose(got, _np_fallback(fused, audio, visual, w_a, 1 - w_a, 0.75), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got[0, :2], fused[0, :2])  # balanced enough: the fused prediction
    np.testing.assert_array_equal(got[0, 3], audio[0, 3])  # visual absent: the audio branch
    np.testing.assert_array_equal(got[0, 4], visual[0, 4])
    np.testing.assert_array_equal(np.asarray(layer([[fused, audio, visual]], [w_a, 1 - w_a], training=True)[0]), fused)
    assert FrameFallback.from_config(layer.get_config()).threshold == 0.75
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        FrameFallback(0.3)
