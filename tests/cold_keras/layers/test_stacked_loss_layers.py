"""The stacked (vectorised) EmotionLoss / ColdLoss against the per-branch formulation they replaced.

`per_branch_*` below are the layers' computations before vectorisation, kept verbatim as references:
one `emotion_regression_loss` / `weighted_cross_entropy` call and one metric update per branch and
dimension, and one `calibration_ordinal_loss` call per calibration term. The stacked layers must give
the same loss terms and metric values to float32 precision, eagerly, in a `tf.function` and inside
`fit` / `evaluate` (where the batch comes from an iterator's multi-output op), on random inputs with
padding, presence flags, NaN in padded frames, class weights and utterance-level scoring.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from cold_keras import losses as cold_losses
from cold_keras import metrics as cold_metrics
from cold_keras.layers import ColdLoss, EmotionLoss
from cold_keras.layers.emotion_loss import output_name, stack_rows_of, utterance_targets

B, T, K, C = 3, 9, 4, 3
BRANCHES = ("", "audio", "visual")
DIMS = ("valence", "arousal")
RTOL, ATOL = 1e-5, 1e-6


# ---------------------------------------------------------------------------------------------------
# The per-branch formulation (the layers' code before vectorisation)
# ---------------------------------------------------------------------------------------------------


def per_branch_emotion_loss(layer, targets, outputs, mask, presence=None):
    total = ops.zeros((), dtype="float32")
    frame_mask = mask
    for branch in layer.branches:
        mask = layer.branch_mask(branch, frame_mask, presence)
        for d, dimension in enumerate(DIMS):
            y_true = targets[dimension]
            y_pred = outputs[output_name(branch, dimension)]
            if layer.task == "regression":
                term = cold_losses.emotion_regression_loss(y_true, y_pred, mask)
            else:
                weights = None if layer.class_weights is None else layer.class_weights[d]
                term = cold_losses.weighted_cross_entropy(y_true, y_pred, weights, mask)
            total = total + ops.cast(term, "float32")
    return total


def per_branch_metrics(layer, targets, outputs, mask, presence=None):
    """{metric name: value} of fresh metrics updated one branch and dimension at a time."""
    results = {}
    frame_mask = mask
    for branch in layer.branches:
        prefix = f"{branch}_" if branch else ""
        mask = layer.branch_mask(branch, frame_mask, presence)
        if layer.sequence_level:
            weight = ops.cast(ops.sum(ops.cast(mask, "float32"), axis=1) > 0, "float32")
        values = []
        for dimension in DIMS:
            key = output_name(branch, dimension)
            if layer.task == "regression":
                metric = cold_metrics.StreamingCCC(name=f"{prefix}ccc_{dimension}")
            else:
                metric = cold_metrics.StreamingMacroF1(num_classes=layer.num_classes, name=f"{prefix}f1_{dimension}")
            y_true = targets[dimension]
            if layer.sequence_level:
                y_true = utterance_targets(y_true, mask, layer.task)
                metric.update_state(y_true, outputs[f"{key}_utterance"], sample_weight=weight)
            else:
                metric.update_state(y_true, outputs[key], sample_weight=mask)
            results[metric.name] = float(metric.result())
            values.append(results[metric.name])
        results[f"{prefix}ccc_mean" if layer.task == "regression" else f"{prefix}f1_macro"] = float(np.mean(values))
    return results


def per_branch_calibration(layer, distances, sigma_norms, mask):
    per_sequence = cold_losses.calibration_ordinal_loss(
        distances,
        sigma_norms,
        mask,
        convention=layer.weight_convention,
        standardize=layer.standardize,
        temperature=layer.temperature,
    )
    return ops.mean(ops.cast(per_sequence, "float32"))


def per_branch_cold_terms(layer, targets, outputs, latents, mask, presence=None):
    def distances(modality):
        per_dimension = [
            cold_losses.per_frame_distances(targets[d], outputs[output_name(modality, d)], layer.task) for d in DIMS
        ]
        return ops.mean(ops.stack(per_dimension, axis=0), axis=0)

    d_audio, d_visual = distances("audio"), distances("visual")
    norm_audio = ops.cast(outputs["audio_sigma_norm"], "float32")
    norm_visual = ops.cast(outputs["visual_sigma_norm"], "float32")
    mask_audio = layer.branch_mask("audio", mask, presence)
    mask_visual = layer.branch_mask("visual", mask, presence)
    co_visual = per_branch_calibration(layer, d_visual, norm_visual, mask_visual)
    co_audio = per_branch_calibration(layer, d_audio, norm_audio, mask_audio)
    co_cross = per_branch_calibration(
        layer,
        ops.concatenate([d_audio, d_visual], axis=1),
        ops.concatenate([norm_audio, norm_visual], axis=1),
        ops.concatenate([mask_audio, mask_visual], axis=1),
    )
    regu = cold_losses.latent_kl_regulariser(
        ops.concatenate([latents["audio_mu"], latents["visual_mu"]], axis=1),
        ops.concatenate([latents["audio_sigma"], latents["visual_sigma"]], axis=1),
        ops.concatenate([mask_audio, mask_visual], axis=1),
    )
    weight = cold_losses.fusion_weight_calibration_loss(
        d_audio, d_visual, outputs["visual_weight"], mask_audio * mask_visual
    )
    return co_visual, co_audio, co_cross, ops.cast(regu, "float32"), weight


# ---------------------------------------------------------------------------------------------------
# Random inputs
# ---------------------------------------------------------------------------------------------------


def _inputs(task="regression", seed=0, presence=True, nan_padding=True, sequence_level=False):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, T + 1, size=B)
    lengths[0] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype("float32")
    if task == "regression":
        targets = {d: rng.uniform(-1, 1, (B, T)).astype("float32") for d in DIMS}
        outputs = {
            output_name(b, d): np.tanh(targets[d] + rng.normal(scale=0.6, size=(B, T))).astype("float32")
            for b in BRANCHES
            for d in DIMS
        }
    else:
        targets = {d: rng.integers(0, C, (B, T)).astype("int32") for d in DIMS}
        outputs = {
            output_name(b, d): (2 * rng.normal(size=(B, T, C))).astype("float32") for b in BRANCHES for d in DIMS
        }
    latents = {}
    for m in ("audio", "visual"):
        latents[f"{m}_mu"] = rng.normal(size=(B, T, K)).astype("float32")
        latents[f"{m}_sigma"] = rng.uniform(0.05, 2.0, size=(B, T, K)).astype("float32")
        outputs[f"{m}_sigma_norm"] = np.sqrt((latents[f"{m}_sigma"] ** 2).sum(-1)).astype("float32")
    outputs["visual_weight"] = rng.uniform(0.05, 0.95, (B, T)).astype("float32")
    if nan_padding:
        for key, value in outputs.items():
            if key.endswith(DIMS) and task == "regression":
                value[mask == 0] = np.nan
    if sequence_level:
        for b in BRANCHES:
            for d in DIMS:
                key = output_name(b, d)
                frames = np.nan_to_num(outputs[key])
                if task == "regression":
                    pooled = (frames * mask).sum(1) / mask.sum(1)
                else:
                    pooled = (frames * mask[..., None]).sum(1) / mask.sum(1)[:, None]
                outputs[f"{key}_utterance"] = pooled.astype("float32")
    inputs = {"targets": targets, "mask": mask, "outputs": outputs, "latents": latents}
    if presence:
        audio = (rng.uniform(size=(B, T)) > 0.3).astype("float32")
        visual = (rng.uniform(size=(B, T)) > 0.3).astype("float32")
        audio[2] = 0.0  # a sequence without audio at all
        inputs["presence"] = {"audio": audio, "visual": visual}
    return inputs


def _metric_values(layer):
    return {m.name: float(m.result()) for m in layer.metrics if not m.name.startswith("loss_")}


def _check_metrics(layer, inputs):
    expected = per_branch_metrics(layer, inputs["targets"], inputs["outputs"], inputs["mask"], inputs.get("presence"))
    actual = _metric_values(layer)
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("presence", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_regression_emotion_loss_and_metrics_equal_the_per_branch_formulation(seed, presence):
    inputs = _inputs("regression", seed, presence=presence)
    layer = EmotionLoss("regression", branches=BRANCHES)
    layer(inputs)
    args = (inputs["targets"], inputs["outputs"], inputs["mask"], inputs.get("presence"))
    expected = float(per_branch_emotion_loss(layer, *args))
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=RTOL)
    np.testing.assert_allclose(float(layer.emotion_loss(*args)), expected, rtol=RTOL)
    _check_metrics(layer, inputs)


@pytest.mark.parametrize("class_weights", [None, [[1.0, 2.0, 0.5], [0.3, 1.0, 3.0]]])
def test_classification_emotion_loss_and_metrics_equal_the_per_branch_formulation(class_weights):
    inputs = _inputs("classification", 2)
    layer = EmotionLoss("classification", branches=BRANCHES, class_weights=class_weights)
    layer(inputs)
    expected = per_branch_emotion_loss(layer, inputs["targets"], inputs["outputs"], inputs["mask"], inputs["presence"])
    np.testing.assert_allclose(float(layer.losses[0]), float(expected), rtol=RTOL)
    _check_metrics(layer, inputs)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_utterance_metrics_equal_the_per_branch_formulation(task):
    inputs = _inputs(task, 3, sequence_level=True)
    layer = EmotionLoss(task, branches=BRANCHES, sequence_level=True)
    layer(inputs)
    _check_metrics(layer, inputs)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize(
    "options",
    [{}, {"weight_convention": "uncertainty"}, {"standardize": True, "temperature": 0.5}],
)
def test_cold_terms_equal_the_per_branch_formulation(task, options):
    inputs = _inputs(task, 4)
    lambdas = {"lambda_co_visual": 0.5, "lambda_co_audio": 2.0, "lambda_co_cross": 3.0, "lambda_regu": 0.25}
    layer = ColdLoss(task, lambda_weight=0.7, **lambdas, **options)
    layer(inputs)
    args = (inputs["targets"], inputs["outputs"], inputs["latents"], inputs["mask"], inputs["presence"])
    expected = [float(v) for v in per_branch_cold_terms(layer, *args)]
    for value, reference in zip(layer.cold_terms(*args), expected):
        np.testing.assert_allclose(float(value), reference, rtol=RTOL, atol=ATOL)
    tracked = {m.name: float(m.result()) for m in layer.metrics}
    names = ("loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu", "loss_weight")
    for name, reference in zip(names, expected):
        np.testing.assert_allclose(tracked[name], reference, rtol=RTOL, atol=ATOL, err_msg=name)
    emo = float(per_branch_emotion_loss(layer, *args[:2], inputs["mask"], inputs["presence"]))
    co_v, co_a, co_av, regu, weight = expected
    total = emo + 0.5 * co_v + 2.0 * co_a + 3.0 * co_av + 0.25 * regu + 0.7 * weight
    np.testing.assert_allclose(float(layer.losses[0]), total, rtol=RTOL)
    _check_metrics(layer, inputs)


def test_the_stacked_layer_equals_the_per_branch_formulation_in_a_tf_function():
    inputs = _inputs("regression", 5)
    layer = ColdLoss()
    args = (inputs["targets"], inputs["outputs"], inputs["mask"], inputs["presence"])

    @tf.function
    def both(targets, outputs, mask, presence):
        return layer.emotion_loss(targets, outputs, mask, presence), per_branch_emotion_loss(
            layer, targets, outputs, mask, presence
        )

    stacked, reference = both(*args)
    np.testing.assert_allclose(float(stacked), float(reference), rtol=RTOL)


def _loss_model(task, branches, presence):
    """A functional model that feeds its inputs to EmotionLoss unchanged (outputs are inputs)."""
    shape = (None,) if task == "regression" else (None, C)
    dtype = "float32" if task == "regression" else "int32"
    mask = keras.Input((None,), name="mask")
    targets = {d: keras.Input((None,), name=d, dtype=dtype) for d in DIMS}
    predictions = {output_name(b, d): keras.Input(shape, name=f"pred_{b}_{d}") for b in branches for d in DIMS}
    # Identity layers, so the loss layer's inputs are computed tensors like a model's outputs.
    outputs = {key: keras.layers.Identity(name=f"{key}_out")(value) for key, value in predictions.items()}
    loss_inputs = {"targets": targets, "mask": mask, "outputs": outputs}
    model_inputs = {
        "mask": mask,
        **targets,
        **{f"pred_{b}_{d}": predictions[output_name(b, d)] for b in branches for d in DIMS},
    }
    if presence:
        flags = {m: keras.Input((None,), name=f"{m}_present") for m in ("audio", "visual")}
        loss_inputs["presence"] = flags
        model_inputs.update({f"{m}_present": flags[m] for m in flags})
    outputs = EmotionLoss(task, branches=branches, name="emotion_loss")(loss_inputs)
    return keras.Model(model_inputs, outputs)


@pytest.mark.parametrize(
    "branches, presence",
    [(("",), False), (BRANCHES, False), (BRANCHES, True)],
)
def test_evaluate_reports_the_per_branch_values(branches, presence):
    """`evaluate` feeds the layer from an iterator's multi-output op: the graph optimiser must not
    change what the stacked masks hold (a stack of copies of one mask once did)."""
    inputs = _inputs("regression", 6, presence=presence, nan_padding=False)
    model = _loss_model("regression", branches, presence)
    model.compile(optimizer="adam")
    data = {"mask": inputs["mask"], **inputs["targets"]}
    data.update({f"pred_{b}_{d}": inputs["outputs"][output_name(b, d)] for b in branches for d in DIMS})
    if presence:
        data.update({f"{m}_present": inputs["presence"][m] for m in ("audio", "visual")})
    result = model.evaluate(data, batch_size=B, verbose=0, return_dict=True)
    layer = model.get_layer("emotion_loss")
    args = (inputs["targets"], inputs["outputs"], inputs["mask"], inputs.get("presence"))
    np.testing.assert_allclose(result["loss_emo"], float(per_branch_emotion_loss(layer, *args)), rtol=RTOL)
    for name, value in per_branch_metrics(layer, *args).items():
        np.testing.assert_allclose(result[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


def test_stack_rows_of_stacks_each_tensor_once_and_keeps_the_order():
    a, b = ops.convert_to_tensor(np.ones((2, 3), "float32")), ops.convert_to_tensor(np.zeros((2, 3), "float32"))
    ones, zeros = np.ones((2, 3)), np.zeros((2, 3))
    np.testing.assert_array_equal(
        np.asarray(stack_rows_of([a, a, b, b, a])), np.stack([ones, ones, zeros, zeros, ones])
    )
    np.testing.assert_array_equal(np.asarray(stack_rows_of([a, a])), np.ones((2, 2, 3)))


@pytest.mark.parametrize("name", ["cold_fusion", "context_fusion"])
def test_a_model_evaluates_in_a_graph_as_eagerly_on_batches_without_presence_flags(name):
    """Without flags the presence gates fill ones, so the optimiser folds `mask * presence` into `mask`:
    the branch masks become copies of the input pipeline's mask in the graph `evaluate` runs."""
    from cold_keras.models import build_model

    rng = np.random.default_rng(7)
    data = {
        "audio": rng.normal(size=(8, T, 3)).astype("float32"),
        "visual": rng.normal(size=(8, T, 2)).astype("float32"),
        "mask": (np.arange(T)[None, :] < rng.integers(3, T + 1, size=(8, 1))).astype("float32"),
        "valence": rng.uniform(-1, 1, (8, T)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (8, T)).astype("float32"),
    }
    model = build_model(name, audio_dim=3, visual_dim=2, gru_units=4, gru_layers=1, latent_dim=4, dropout=0.0, seed=0)
    model.compile(optimizer="adam")
    graph = model.evaluate(data, batch_size=4, verbose=0, return_dict=True)
    model.compile(optimizer="adam", run_eagerly=True)
    eager = model.evaluate(data, batch_size=4, verbose=0, return_dict=True)
    assert sorted(graph) == sorted(eager)
    for key, value in eager.items():
        np.testing.assert_allclose(graph[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
