"""Tests of ColdLoss: every term of paper Eq. 8 against NumPy, tracking, options, dtypes."""

import numpy as np
import pytest

from cold_keras.layers import ColdLoss
from tests.cold_keras.layers import loss_references as ref
from tests.test_case import dtype_policy

B, T, K, C = 3, 7, 4, 3
BRANCHES = ("", "audio", "visual")
DIMS = ("valence", "arousal")


def _inputs(task="regression", seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), "float32")
    mask[1, 4:] = 0.0
    mask[2, 2:] = 0.0
    if task == "regression":
        targets = {d: rng.uniform(-1, 1, (B, T)).astype("float32") for d in DIMS}
        outputs = {
            (f"{b}_{d}" if b else d): np.tanh(targets[d] + rng.normal(scale=0.5, size=(B, T))).astype("float32")
            for b in BRANCHES
            for d in DIMS
        }
    else:
        targets = {d: rng.integers(0, C, (B, T)).astype("int32") for d in DIMS}
        outputs = {
            (f"{b}_{d}" if b else d): (2 * rng.normal(size=(B, T, C))).astype("float32") for b in BRANCHES for d in DIMS
        }
    latents = {}
    for m in ("audio", "visual"):
        latents[f"{m}_mu"] = rng.normal(size=(B, T, K)).astype("float32")
        latents[f"{m}_sigma"] = rng.uniform(0.05, 2.0, size=(B, T, K)).astype("float32")
        outputs[f"{m}_sigma_norm"] = np.sqrt((latents[f"{m}_sigma"] ** 2).sum(-1)).astype("float32")
    return {"targets": targets, "mask": mask, "outputs": outputs, "latents": latents}


def _np_terms(inputs, task, **options):
    targets, mask, outputs, latents = (inputs[k] for k in ("targets", "mask", "outputs", "latents"))
    distances = {}
    for m in ("audio", "visual"):
        if task == "regression":
            per_dim = [(targets[d] - outputs[f"{m}_{d}"]) ** 2 for d in DIMS]
        else:
            per_dim = [ref.frame_cross_entropy(targets[d], outputs[f"{m}_{d}"]) for d in DIMS]
        distances[m] = np.mean(per_dim, axis=0)
    norms = {m: outputs[f"{m}_sigma_norm"] for m in ("audio", "visual")}
    co_v = ref.calibration(distances["visual"], norms["visual"], mask, **options)
    co_a = ref.calibration(distances["audio"], norms["audio"], mask, **options)
    co_av = ref.calibration(
        np.concatenate([distances["audio"], distances["visual"]], 1),
        np.concatenate([norms["audio"], norms["visual"]], 1),
        np.concatenate([mask, mask], 1),
        **options,
    )
    regu = ref.gaussian_kl(
        np.concatenate([latents["audio_mu"], latents["visual_mu"]], 1),
        np.concatenate([latents["audio_sigma"], latents["visual_sigma"]], 1),
        np.concatenate([mask, mask], 1),
    )
    if task == "regression":
        emo = sum(
            ref.regression_emotion_loss(targets[d], outputs[f"{b}_{d}" if b else d], mask)
            for b in BRANCHES
            for d in DIMS
        )
    else:
        emo = sum(
            ref.weighted_cross_entropy(targets[d], outputs[f"{b}_{d}" if b else d], None, mask)
            for b in BRANCHES
            for d in DIMS
        )
    return emo, co_v, co_a, co_av, regu


LAMBDAS = {"lambda_co_visual": 0.5, "lambda_co_audio": 2.0, "lambda_co_cross": 3.0, "lambda_regu": 0.25}


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_terms_and_total_match_numpy(task):
    inputs = _inputs(task)
    layer = ColdLoss(task, **LAMBDAS)
    returned = layer(inputs)
    assert sorted(returned) == sorted(inputs["outputs"])
    emo, co_v, co_a, co_av, regu = _np_terms(inputs, task)
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    np.testing.assert_allclose(metrics["loss_emo"], emo, rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_co_visual"], co_v, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(metrics["loss_co_audio"], co_a, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(metrics["loss_co_cross"], co_av, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(metrics["loss_regu"], regu, rtol=1e-5)
    total = emo + 0.5 * co_v + 2.0 * co_a + 3.0 * co_av + 0.25 * regu
    assert len(layer.losses) == 1 and layer.losses[0].dtype == "float32"
    np.testing.assert_allclose(float(layer.losses[0]), total, rtol=1e-5)
    assert min(co_v, co_a, co_av) > 0


@pytest.mark.parametrize(
    "options",
    [
        {"convention": "uncertainty"},
        {"standardize": True},
        {"temperature": 2.0},
    ],
)
def test_calibration_options_are_applied(options):
    inputs = _inputs()
    layer = ColdLoss(
        weight_convention=options.get("convention", "informativeness"),
        standardize=options.get("standardize", False),
        temperature=options.get("temperature", 1.0),
    )
    layer(inputs)
    _, co_v, _, co_av, _ = _np_terms(inputs, "regression", **options)
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    np.testing.assert_allclose(metrics["loss_co_visual"], co_v, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(metrics["loss_co_cross"], co_av, rtol=1e-4, atol=1e-7)


def test_padded_frames_do_not_matter():
    inputs = _inputs()
    layer = ColdLoss(**LAMBDAS)
    layer(inputs)
    first = float(layer.losses[0])
    changed = _inputs()
    padded = changed["mask"] == 0
    for m in ("audio", "visual"):
        changed["outputs"][f"{m}_sigma_norm"][padded] = 1e-3
        changed["latents"][f"{m}_mu"][padded] = 30.0
        for d in DIMS:
            changed["outputs"][f"{m}_{d}"][padded] = -1.0
    layer(changed)
    np.testing.assert_allclose(float(layer.losses[0]), first, rtol=1e-6)


def test_terms_are_float32_under_mixed_float16():
    inputs = _inputs()
    half = {
        **inputs,
        "outputs": {k: v.astype("float16") for k, v in inputs["outputs"].items()},
        "latents": {k: v.astype("float16") for k, v in inputs["latents"].items()},
    }
    with dtype_policy("mixed_float16"):
        layer = ColdLoss(**LAMBDAS)
        layer(half)
    assert layer.losses[0].dtype == "float32"
    emo, co_v, co_a, co_av, regu = _np_terms(inputs, "regression")
    total = emo + 0.5 * co_v + 2.0 * co_a + 3.0 * co_av + 0.25 * regu
    np.testing.assert_allclose(float(layer.losses[0]), total, rtol=2e-2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"branches": ("",)}, "unimodal"),
        ({"lambda_regu": -1.0}, "lambda_regu"),
        ({"weight_convention": "scale"}, "weight_convention"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ColdLoss(**kwargs)


def test_config_round_trip():
    layer = ColdLoss("classification", class_weights=[[1, 2, 3], [1, 1, 1]], standardize=True, **LAMBDAS)
    config = layer.get_config()
    restored = ColdLoss.from_config(config)
    assert restored.get_config() == config
    assert restored.lambda_co_cross == 3.0
