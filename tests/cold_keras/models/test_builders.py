"""Tests of build_model / inference_model for every model name: training, dtypes, saving, masking."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cold_keras.layers import ColdLoss, TemporalBlock
from cold_keras.models import MODEL_NAMES, MODELS_WITH_UNIMODAL_BRANCHES, build_model, inference_model
from cold_keras.names import TASKS
from tests.test_case import dtype_policy, run_model_saving_test

B, T, DA, DV = 2, 8, 5, 4

TINY = dict(
    gru_units=4,
    gru_layers=1,
    latent_dim=4,
    num_heads=2,
    transformer_dim=4,
    num_transformer_layers=1,
    seed=0,
)
FEATURES = ("audio", "visual", "mask")


def _batch(task, seed=0, batch=B):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, T), "float32")
    mask[1::2, 5:] = 0.0
    data = {
        "audio": rng.normal(size=(batch, T, DA)).astype("float32"),
        "visual": rng.normal(size=(batch, T, DV)).astype("float32"),
        "mask": mask,
    }
    for d in ("valence", "arousal"):
        if task == "regression":
            data[d] = rng.uniform(-1, 1, (batch, T)).astype("float32")
        else:
            data[d] = rng.integers(0, 3, (batch, T)).astype("int32")
    return data


def _features(data):
    return {k: data[k] for k in FEATURES}


def _expected_outputs(name, task, sequence_level=False):
    frame = (B, T) if task == "regression" else (B, T, 3)
    utterance = (B,) if task == "regression" else (B, 3)
    branches = [""] + (["audio", "visual"] if name in MODELS_WITH_UNIMODAL_BRANCHES else [])
    shapes = {}
    for branch in branches:
        for d in ("valence", "arousal"):
            key = f"{branch}_{d}" if branch else d
            shapes[key] = frame
            if sequence_level:
                shapes[f"{key}_utterance"] = utterance
    extras = {
        "cold_fusion": ["audio_weight", "visual_weight", "audio_sigma_norm", "visual_sigma_norm"],
        "prediction_fusion": ["audio_weight", "visual_weight"],
    }.get(name, [])
    shapes.update({key: (B, T) for key in extras})
    return shapes


def _expected_logs(name, task):
    kind, mean = ("ccc", "ccc_mean") if task == "regression" else ("f1", "f1_macro")
    prefixes = [""] + (["audio_", "visual_"] if name in MODELS_WITH_UNIMODAL_BRANCHES else [])
    names = {"loss", "loss_emo"}
    for p in prefixes:
        names |= {f"{p}{kind}_valence", f"{p}{kind}_arousal", f"{p}{mean}"}
    if name == "cold_fusion":
        names |= {"loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu", "loss_weight"}
    return names


@pytest.fixture(scope="module")
def tiny_model():
    """Tiny float32 training models, built once per (name, task) and shared by the module's tests."""
    cache = {}

    def get(name, task):
        if (name, task) not in cache:
            model = build_model(name, audio_dim=DA, visual_dim=DV, task=task, **TINY)
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
            cache[name, task] = model
        return cache[name, task]

    return get


def _check_outputs(outputs, name, task, sequence_level=False):
    expected = _expected_outputs(name, task, sequence_level)
    assert sorted(outputs) == sorted(expected)
    for key, shape in expected.items():
        value = outputs[key]
        assert tuple(value.shape) == shape, key
        assert value.dtype == "float32", (key, value.dtype)
        assert np.all(np.isfinite(np.asarray(value))), key


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_logs_contract_metrics_and_inference_outputs(tiny_model, name, task):
    model = tiny_model(name, task)
    assert model.name == name
    data = {k: np.concatenate([v, v]) for k, v in _batch(task).items()}
    history = model.fit(data, validation_data=(_batch(task, 1),), epochs=1, batch_size=2, verbose=0)
    logs = set(history.history)
    expected = _expected_logs(name, task)
    assert logs == expected | {f"val_{n}" for n in expected}
    assert all(np.isfinite(history.history[n][-1]) for n in ("loss", "val_loss"))
    outputs = inference_model(model)(_features(_batch(task)), training=False)
    _check_outputs(outputs, name, task)
    if "audio_weight" in outputs:
        total = np.asarray(outputs["audio_weight"]) + np.asarray(outputs["visual_weight"])
        np.testing.assert_allclose(total, np.ones((B, T)), rtol=1e-6)
    if task == "regression":
        assert np.abs(np.asarray(outputs["valence"])).max() <= 1.0


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mixed_precision_training_keeps_float32_outputs(name, task, policy):
    before = keras.config.dtype_policy().name
    with dtype_policy(policy):
        model = build_model(name, audio_dim=DA, visual_dim=DV, task=task, **TINY)
        # Eager steps: the graph path is covered in float32 above; tracing per policy is slow.
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
        data = {k: np.concatenate([v, v]) for k, v in _batch(task).items()}
        history = model.fit(data, epochs=1, batch_size=2, verbose=0)
        compute_dtypes = {layer.compute_dtype for layer in model.layers if isinstance(layer, TemporalBlock)}
        outputs = inference_model(model)(_features(_batch(task)), training=False)
    assert keras.config.dtype_policy().name == before
    assert compute_dtypes in (set(), {policy.split("_")[1]})
    assert np.isfinite(history.history["loss"][-1])
    _check_outputs(outputs, name, task)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_valid_frames_ignore_padded_features(tiny_model, name):
    infer = inference_model(tiny_model(name, "regression"))
    data = _features(_batch("regression"))
    changed = {k: v.copy() for k, v in data.items()}
    padded = data["mask"] == 0
    rng = np.random.default_rng(3)
    changed["audio"][padded] = 50.0 * rng.normal(size=(padded.sum(), DA))
    changed["visual"][padded] = 50.0 * rng.normal(size=(padded.sum(), DV))
    before = infer(data, training=False)
    after = infer(changed, training=False)
    for key in before:
        np.testing.assert_allclose(
            np.asarray(after[key])[~padded],
            np.asarray(before[key])[~padded],
            rtol=1e-4,
            atol=1e-5,
            err_msg=key,
        )


@pytest.mark.parametrize("name", ["audio", "visual"])
def test_unimodal_models_ignore_the_other_modality(tiny_model, name):
    infer = inference_model(tiny_model(name, "regression"))
    data = _features(_batch("regression"))
    other = "visual" if name == "audio" else "audio"
    changed = {**data, other: data[other] + 10.0}
    np.testing.assert_array_equal(np.asarray(infer(data)["valence"]), np.asarray(infer(changed)["valence"]))


@pytest.mark.parametrize(
    "name, task",
    [(name, "regression") for name in MODEL_NAMES]
    + [("cold_fusion", "classification"), ("prediction_fusion", "classification")],
)
def test_keras_file_round_trip(tiny_model, name, task, tmp_path):
    model = tiny_model(name, task)
    data = _batch(task)
    reloaded = run_model_saving_test(model, data, tmp_path)
    expected = inference_model(model)(_features(data), training=False)
    actual = inference_model(reloaded)(_features(data), training=False)
    for key in expected:
        np.testing.assert_allclose(np.asarray(actual[key]), np.asarray(expected[key]), rtol=1e-6, atol=1e-6)
    # The reloaded model trains with the same in-graph losses and metrics.
    reloaded.compile(optimizer="adam", run_eagerly=True)
    logs = reloaded.fit(data, epochs=1, batch_size=2, verbose=0).history
    assert set(logs) == _expected_logs(name, task)
    # The inference model saves on its own too.
    run_model_saving_test(inference_model(model), _features(data), tmp_path)


@pytest.mark.parametrize("task", TASKS)
def test_sequence_level_outputs_are_masked_means(task):
    model = build_model("prediction_fusion", audio_dim=DA, visual_dim=DV, task=task, sequence_level=True, **TINY)
    data = _batch(task)
    outputs = inference_model(model)(_features(data), training=False)
    _check_outputs(outputs, "prediction_fusion", task, sequence_level=True)
    mask = data["mask"]
    for key in ("valence", "audio_arousal"):
        frames = np.asarray(outputs[key], np.float64)
        utterance = np.asarray(outputs[f"{key}_utterance"], np.float64)
        for i in range(B):
            valid = mask[i] > 0
            if task == "regression":
                np.testing.assert_allclose(utterance[i], frames[i][valid].mean(), rtol=1e-5)
            else:
                p = np.exp(frames[i][valid] - frames[i][valid].max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                np.testing.assert_allclose(np.exp(utterance[i]), p.mean(0), rtol=1e-5)
    model.compile(optimizer="adam", run_eagerly=True)
    assert np.isfinite(model.fit(data, epochs=1, verbose=0).history["ccc_mean" if task == "regression" else "loss"][-1])


def test_normalization_is_baked_in():
    rng = np.random.default_rng(4)
    audio_norm = (rng.normal(size=DA), rng.uniform(0.5, 4.0, size=DA))
    visual_norm = (rng.normal(size=DV), rng.uniform(0.5, 4.0, size=DV))
    with_norm = build_model(
        "feature_fusion", audio_dim=DA, visual_dim=DV, audio_norm=audio_norm, visual_norm=visual_norm, **TINY
    )
    plain = build_model("feature_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(with_norm.get_layer(layer.name).get_weights())
    data = _features(_batch("regression"))
    normalized = {
        **data,
        "audio": ((data["audio"] - audio_norm[0]) / np.sqrt(audio_norm[1])).astype("float32"),
        "visual": ((data["visual"] - visual_norm[0]) / np.sqrt(visual_norm[1])).astype("float32"),
    }
    expected = inference_model(plain)(normalized, training=False)
    actual = inference_model(with_norm)(data, training=False)
    np.testing.assert_allclose(np.asarray(actual["valence"]), np.asarray(expected["valence"]), rtol=1e-4, atol=1e-5)


def test_shared_predictor_head(tiny_model):
    for name in ("context_fusion", "cold_fusion"):
        model = tiny_model(name, "regression")
        predictor = model.get_layer("predictor")
        assert len(predictor._inbound_nodes) == 3
        heads = [layer.name for layer in model.layers if "head" in layer.name or layer.name == "predictor"]
        assert heads == ["predictor"]


def test_compile_builds_the_optimizer_so_the_first_fit_traces_the_training_step_once():
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    assert model.optimizer.built
    assert len(model.optimizer.variables) > len(model.trainable_variables)  # momenta and velocities
    traces = []
    train_step = model.train_step

    def counting_train_step(data):
        traces.append(1)
        return train_step(data)

    model.train_step = counting_train_step
    data = _batch("regression")
    model.fit(tf.data.Dataset.from_tensors((data,)).repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert len(traces) == 1  # the optimizer's variables were made before tracing, so no retrace


def test_context_fusion_head_sees_normalised_contexts_whatever_the_projection_scale():
    """The cause of context fusion's collapse at the paper's sizes: an unbounded context drove the
    shared tanh head into saturation. Scaling the contexts' dense projection by 1000 must leave the
    head's input (and so the predictions) unchanged: zero mean, unit variance per frame."""
    model = build_model("context_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    data = _features(_batch("regression"))
    data.update({f"{m}_present": np.ones_like(data["mask"]) for m in ("audio", "visual")})
    infer = inference_model(model)
    probe = keras.Model(infer.inputs, [infer.get_layer(f"{m}_context_norm").output for m in ("audio", "visual")])
    before = [np.asarray(x) for x in probe(data, training=False)]
    predictions = np.asarray(infer(data, training=False)["valence"])
    for modality in ("audio", "visual"):
        block = model.get_layer(f"{modality}_temporal")
        (kernel,) = [w for w in block.weights if w.path.endswith("output_dense/kernel")]
        kernel.assign(np.asarray(kernel) * 1000.0)  # the bias is 0 in a fresh model
    after = [np.asarray(x) for x in probe(data, training=False)]
    valid = data["mask"] > 0  # padded frames have a zero context
    for h in after:
        np.testing.assert_allclose(h.mean(axis=-1)[valid], 0.0, atol=1e-4)
        np.testing.assert_allclose(h.var(axis=-1)[valid], 1.0, rtol=1e-2)
    for h_before, h_after in zip(before, after):
        np.testing.assert_allclose(h_after, h_before, rtol=1e-2, atol=1e-3)
    # The head then reads the normalised context divided by sqrt(latent_dim).
    scaled = keras.Model(infer.inputs, [infer.get_layer(f"{m}_context_scale").output for m in ("audio", "visual")])
    for h, h_scaled in zip(after, scaled(data, training=False)):
        np.testing.assert_allclose(np.asarray(h_scaled), h / np.sqrt(TINY["latent_dim"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(infer(data, training=False)["valence"]), predictions, rtol=1e-2, atol=1e-3)


def test_cold_calibration_gradient_reaches_sigma_not_predictor():
    model = build_model("cold_fusion", audio_dim=DA, visual_dim=DV, **TINY)
    loss_layer = model.get_layer("cold_loss")
    outputs = {layer.name[: -len("_output")]: layer.output for layer in model.layers if layer.name.endswith("_output")}
    latents = {}
    for modality in ("audio", "visual"):
        _, latents[f"{modality}_mu"], latents[f"{modality}_sigma"] = model.get_layer(f"{modality}_gaussian").output
    inputs = {k: model.get_layer(k).output for k in FEATURES + ("audio_present", "visual_present")}
    inner = keras.Model(inputs, {"outputs": outputs, "latents": latents})
    data = _batch("regression")
    targets = {d: data[d] for d in ("valence", "arousal")}
    variables = {
        "sigma": [model.get_layer(f"{m}_gaussian").sigma_dense.kernel for m in ("audio", "visual")],
        "mu": [model.get_layer(f"{m}_gaussian").mu_dense.kernel for m in ("audio", "visual")],
        "predictor": [model.get_layer("predictor").dense.kernel],
        "gru": [model.get_layer("audio_temporal").grus[0].forward_layer.cell.kernel],
    }
    flat = [v for group in variables.values() for v in group]
    with tf.GradientTape(persistent=True) as tape:
        values = inner({**_features(data), "audio_present": None, "visual_present": None}, training=True)
        co_v, co_a, co_av, regu, _ = loss_layer.cold_terms(
            targets, values["outputs"], values["latents"], keras.ops.convert_to_tensor(data["mask"])
        )
        calibration = co_v + co_a + co_av
    grads = tape.gradient(calibration, [v.value for v in flat])
    regu_grads = tape.gradient(regu, [v.value for v in flat])

    def norms(gradients):
        result, i = {}, 0
        for key, group in variables.items():
            result[key] = [0.0 if g is None else float(tf.reduce_max(tf.abs(g))) for g in gradients[i : i + len(group)]]
            i += len(group)
        return result

    calibration_norms = norms(grads)
    assert min(calibration_norms["sigma"]) > 0
    assert min(calibration_norms["gru"]) > 0
    assert calibration_norms["predictor"] == [0.0]
    assert calibration_norms["mu"] == [0.0, 0.0]
    regu_norms = norms(regu_grads)
    assert min(regu_norms["sigma"]) > 0 and min(regu_norms["mu"]) > 0
    assert regu_norms["predictor"] == [0.0]


def test_default_hyperparameters():
    model = build_model("cold_fusion", audio_dim=3, visual_dim=2)
    loss = model.get_layer("cold_loss")
    assert isinstance(loss, ColdLoss)
    assert (loss.lambda_co_visual, loss.lambda_co_audio, loss.lambda_co_cross, loss.lambda_regu) == (
        1e-3,
        1e-3,
        1e-3,
        1e-4,
    )
    assert loss.weight_convention == "informativeness"
    block = model.get_layer("audio_temporal")
    assert (block.units, block.num_layers, block.dropout) == (256, 2, 0.5)
    assert model.get_layer("audio_gaussian").latent_dim == 128
    transformer = build_model("transformer", audio_dim=3, visual_dim=2)
    blocks = [layer for layer in transformer.layers if layer.name.startswith("audio_to_visual_")]
    assert len(blocks) == 3 and blocks[0].num_heads == 16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "late_fusion"}, "Unknown model name"),
        ({"task": "ranking"}, "task"),
        ({"gru_size": 3}, "gru_size"),
        ({"gru_units": 0}, "gru_units"),
        ({"audio_norm": (np.zeros(2), np.ones(2))}, "audio_norm"),
        ({"visual_norm": np.zeros(DV)}, "visual_norm"),
        ({"name": "transformer", "transformer_dim": 10, "num_heads": 4}, "divisible"),
        ({"name": "cold_fusion", "weight_convention": "scale"}, "convention"),
        ({"name": "cold_fusion", "lambda_co_cross": -1.0}, "lambda_co_cross"),
    ],
)
def test_invalid_configuration(kwargs, message):
    kwargs = {"name": "cold_fusion", **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(kwargs.pop("name"), audio_dim=DA, visual_dim=DV, **{**TINY, **kwargs})


def test_inference_model_needs_a_built_model():
    inputs = keras.Input((None, 3), name="audio")
    with pytest.raises(ValueError, match="build_model"):
        inference_model(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
