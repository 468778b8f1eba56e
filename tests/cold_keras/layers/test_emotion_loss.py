"""Tests of EmotionLoss: L_emo and the streaming metrics against NumPy, and inside fit/evaluate."""

import keras
import numpy as np
import pytest

from cold_keras.layers import EmotionHead, EmotionLoss
from tests.cold_keras.layers import loss_references as ref
from tests.test_case import dtype_policy

B, T, C = 3, 8, 3
BRANCHES = ("", "audio", "visual")


def _mask():
    mask = np.ones((B, T), "float32")
    mask[1, 5:] = 0.0
    mask[2, 3:] = 0.0
    return mask


def _regression_inputs(seed=0):
    rng = np.random.default_rng(seed)
    targets = {d: rng.uniform(-1, 1, (B, T)).astype("float32") for d in ("valence", "arousal")}
    outputs = {}
    for branch in BRANCHES:
        for d in ("valence", "arousal"):
            key = f"{branch}_{d}" if branch else d
            noise = rng.normal(scale=0.5, size=(B, T))
            outputs[key] = np.tanh(targets[d] + noise).astype("float32")
    return {"targets": targets, "mask": _mask(), "outputs": outputs}


def _classification_inputs(seed=0):
    rng = np.random.default_rng(seed)
    targets = {d: rng.integers(0, C, (B, T)).astype("int32") for d in ("valence", "arousal")}
    outputs = {}
    for branch in BRANCHES:
        for d in ("valence", "arousal"):
            key = f"{branch}_{d}" if branch else d
            outputs[key] = (2.0 * rng.normal(size=(B, T, C))).astype("float32")
    return {"targets": targets, "mask": _mask(), "outputs": outputs}


def test_regression_loss_and_metrics_match_numpy():
    inputs = _regression_inputs()
    layer = EmotionLoss("regression", branches=BRANCHES)
    returned = layer(inputs)
    assert sorted(returned) == sorted(inputs["outputs"])
    for key, value in returned.items():
        np.testing.assert_array_equal(np.asarray(value), inputs["outputs"][key])
    mask = inputs["mask"]
    valid = mask > 0
    expected = sum(
        ref.regression_emotion_loss(inputs["targets"][d], inputs["outputs"][k], mask)
        for k, d in [((f"{b}_{d}" if b else d), d) for b in BRANCHES for d in ("valence", "arousal")]
    )
    assert len(layer.losses) == 1
    assert layer.losses[0].dtype == "float32"
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    np.testing.assert_allclose(metrics["loss_emo"], expected, rtol=1e-5)
    for branch in BRANCHES:
        prefix = f"{branch}_" if branch else ""
        cccs = []
        for d in ("valence", "arousal"):
            key = f"{branch}_{d}" if branch else d
            value = ref.ccc_sample(inputs["targets"][d][valid], inputs["outputs"][key][valid])
            np.testing.assert_allclose(metrics[f"{prefix}ccc_{d}"], value, rtol=1e-5)
            cccs.append(value)
        np.testing.assert_allclose(metrics[f"{prefix}ccc_mean"], np.mean(cccs), rtol=1e-5)


def test_classification_loss_and_metrics_match_numpy():
    inputs = _classification_inputs()
    weights = [[1.0, 2.0, 0.5], [0.3, 1.0, 3.0]]
    layer = EmotionLoss("classification", branches=BRANCHES, class_weights=weights)
    layer(inputs)
    mask = inputs["mask"]
    valid = mask > 0
    expected = 0.0
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    for branch in BRANCHES:
        prefix = f"{branch}_" if branch else ""
        f1s = []
        for i, d in enumerate(("valence", "arousal")):
            key = f"{branch}_{d}" if branch else d
            labels, logits = inputs["targets"][d], inputs["outputs"][key]
            expected += ref.weighted_cross_entropy(labels, logits, weights[i], mask)
            f1 = ref.macro_f1(labels[valid], logits.argmax(-1)[valid])
            np.testing.assert_allclose(metrics[f"{prefix}f1_{d}"], f1, rtol=1e-6)
            f1s.append(f1)
        np.testing.assert_allclose(metrics[f"{prefix}f1_macro"], np.mean(f1s), rtol=1e-6)
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)


def test_sequence_level_metrics_score_utterances():
    inputs = _regression_inputs()
    mask = inputs["mask"]
    for key in list(inputs["outputs"]):
        values = inputs["outputs"][key]
        inputs["outputs"][f"{key}_utterance"] = (values * mask).sum(1) / mask.sum(1)
    layer = EmotionLoss("regression", branches=("",), sequence_level=True)
    layer(inputs)
    # Utterance labels: masked means of the broadcast labels.
    y = (inputs["targets"]["valence"] * mask).sum(1) / mask.sum(1)
    expected = ref.ccc_sample(y, inputs["outputs"]["valence_utterance"])
    metrics = {m.name: float(m.result()) for m in layer.metrics}
    np.testing.assert_allclose(metrics["ccc_valence"], expected, rtol=1e-5)
    # The loss stays frame-level.
    frame_loss = ref.regression_emotion_loss(inputs["targets"]["valence"], inputs["outputs"]["valence"], mask)
    frame_loss += ref.regression_emotion_loss(inputs["targets"]["arousal"], inputs["outputs"]["arousal"], mask)
    np.testing.assert_allclose(float(layer.losses[0]), frame_loss, rtol=1e-5)


def test_loss_is_float32_under_mixed_float16():
    inputs = _regression_inputs()
    inputs["outputs"] = {k: v.astype("float16") for k, v in inputs["outputs"].items()}
    with dtype_policy("mixed_float16"):
        layer = EmotionLoss("regression", branches=BRANCHES)
        layer(inputs)
    assert layer.losses[0].dtype == "float32"
    assert np.isfinite(float(layer.losses[0]))


def _tiny_model():
    features = keras.Input((None, 2), name="features")
    mask = keras.Input((None,), name="mask")
    targets = {d: keras.Input((None,), name=d) for d in ("valence", "arousal")}
    valence, arousal = EmotionHead("regression", name="head")(features)
    outputs = EmotionLoss("regression", name="emotion_loss")(
        {"targets": targets, "mask": mask, "outputs": {"valence": valence, "arousal": arousal}}
    )
    return keras.Model({"features": features, "mask": mask, **targets}, outputs)


def _data(seed, n=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, 2)).astype("float32")
    mask = np.ones((n, T), "float32")
    mask[::2, 6:] = 0.0
    valence = np.tanh(x[..., 0] + 0.3 * rng.normal(size=(n, T))).astype("float32")
    arousal = np.tanh(x[..., 1] - x[..., 0]).astype("float32")
    return {"features": x, "mask": mask, "valence": valence, "arousal": arousal}


def test_metrics_are_logged_and_reset_in_fit_and_evaluate():
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    train, val = _data(0), _data(1)
    history = model.fit(train, validation_data=(val,), epochs=2, batch_size=2, verbose=0)
    for name in ("loss_emo", "ccc_valence", "ccc_arousal", "ccc_mean"):
        assert name in history.history and f"val_{name}" in history.history
    # The last validation pass equals NumPy on all validation frames (streamed over 4 batches).
    predictions = model.predict(val, batch_size=2, verbose=0)
    valid = val["mask"] > 0
    expected = ref.ccc_sample(val["valence"][valid], predictions["valence"][valid])
    np.testing.assert_allclose(history.history["val_ccc_valence"][-1], expected, rtol=1e-4)
    # Evaluating another set starts from zero (metrics are reset), not from the previous sums.
    other = _data(2)
    result = model.evaluate(other, batch_size=4, verbose=0, return_dict=True)
    predictions = model.predict(other, batch_size=4, verbose=0)
    valid = other["mask"] > 0
    for d in ("valence", "arousal"):
        expected = ref.ccc_sample(other[d][valid], predictions[d][valid])
        np.testing.assert_allclose(result[f"ccc_{d}"], expected, rtol=1e-4)
    np.testing.assert_allclose(result["loss"], result["loss_emo"], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "ordinal"}, "task"),
        ({"branches": ("av",)}, "branches"),
        ({"branches": ()}, "branches"),
        ({"task": "classification", "class_weights": [[1.0, 1.0]]}, "class_weights"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmotionLoss(**kwargs)


def test_config_round_trip():
    layer = EmotionLoss("classification", branches=BRANCHES, class_weights=[[1, 2, 3], [3, 2, 1]], sequence_level=True)
    config = layer.get_config()
    assert EmotionLoss.from_config(config).get_config() == config
