"""cold_keras.optimizers.AdamW: Keras' AdamW's updates exactly, the learning rate evaluated once per step,
and `.keras` files loadable both ways."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from cold_keras.models import build_model
from cold_keras.optimizers import AdamW

SHAPES = [(3, 4), (4,), (2, 2, 2), (5, 1)]


def _schedule():
    return keras.optimizers.schedules.CosineDecayRestarts(5e-2, first_decay_steps=3, t_mul=2.0)


def _train(optimizer_cls, *, graph, steps=7, **options):
    """Weights and optimiser variables after `steps` updates of random gradients (same seeds for every class)."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}") for i, s in enumerate(SHAPES)]
    optimizer = optimizer_cls(**{"learning_rate": _schedule(), "weight_decay": 1e-2, **options})
    optimizer.build(variables)

    def step(gradients):
        optimizer.apply(gradients, variables)

    if graph:
        step = tf.function(step)
    for _ in range(steps):
        step([tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES])
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"global_clipnorm": 1.0},
        {"clipnorm": 0.5, "amsgrad": True},
        {"learning_rate": 3e-3},
        {"learning_rate": lambda: 2e-2},
        {"gradient_accumulation_steps": 2},
        {"use_ema": True},
    ],
    ids=["schedule", "global_clipnorm", "clipnorm_amsgrad", "float", "callable", "accumulation", "ema"],
)
def test_updates_are_identical_to_keras_adamw(graph, options):
    expected = _train(keras.optimizers.AdamW, graph=graph, **options)
    actual = _train(AdamW, graph=graph, **options)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def test_the_moving_average_follows_numpy_and_swaps_exactly():
    """use_ema: after each step the average is m * average + (1 - m) * weight (the first step's weight
    itself); `swap_average_weights` exchanges both bit for bit; a second swap undoes it."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
    optimizer = AdamW(learning_rate=_schedule(), weight_decay=1e-2, use_ema=True, ema_momentum=0.8)
    optimizer.build(variables)
    averages = None
    for _ in range(5):
        optimizer.apply([tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES], variables)
        weights = [v.numpy().astype(np.float64) for v in variables]
        averages = weights if averages is None else [0.8 * a + 0.2 * w for a, w in zip(averages, weights)]
    training = [v.numpy() for v in variables]
    held = [v.numpy() for v in optimizer.variables if v.path.endswith("_average")]
    for a, e in zip(held, averages):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    optimizer.swap_average_weights()
    for variable, a in zip(variables, held):
        np.testing.assert_array_equal(variable.numpy(), a)
    optimizer.swap_average_weights()
    for variable, w in zip(variables, training):
        np.testing.assert_array_equal(variable.numpy(), w)
    with pytest.raises(ValueError, match="use_ema=True"):
        AdamW(learning_rate=1e-3).swap_average_weights()


def test_inside_a_loss_scale_optimizer_updates_are_identical_to_keras_adamw():
    """`mixed_float16` training wraps the optimiser in a LossScaleOptimizer (dynamic loss scaling)."""
    results = []
    for cls in (keras.optimizers.AdamW, AdamW):
        rng = np.random.default_rng(0)
        variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
        optimizer = keras.optimizers.LossScaleOptimizer(cls(learning_rate=_schedule(), weight_decay=1e-2))
        optimizer.build(variables)
        step = tf.function(lambda gradients, o=optimizer: o.apply(gradients, variables))
        for i in range(5):
            scale = float(optimizer.dynamic_scale)
            gradients = [rng.normal(size=s).astype("float32") * scale for s in SHAPES]
            if i == 2:
                gradients[0][0] = np.inf  # a skipped step: the scale drops, no weight changes
            step([tf.constant(g) for g in gradients])
        results.append([v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables])
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


def test_excluded_weights_are_not_decayed_as_in_keras():
    results = []
    for cls in (keras.optimizers.AdamW, AdamW):
        rng = np.random.default_rng(0)
        variables = [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}") for i, s in enumerate(SHAPES)]
        optimizer = cls(learning_rate=_schedule(), weight_decay=0.1)
        optimizer.exclude_from_weight_decay(var_names=["w1"])
        for _ in range(3):
            optimizer.apply([tf.constant(rng.normal(size=s).astype("float32")) for s in SHAPES], variables)
        results.append([v.numpy() for v in variables])
    for a, e in zip(*results):
        np.testing.assert_array_equal(a, e)


def test_the_schedule_is_traced_once_per_step():
    variables = [keras.Variable(np.ones(s, "float32")) for s in SHAPES]
    counts = {}
    for cls in (keras.optimizers.AdamW, AdamW):
        optimizer = cls(learning_rate=_schedule(), weight_decay=1e-2)
        optimizer.build(variables)
        spec = [tf.TensorSpec(s) for s in SHAPES]
        graph = tf.function(lambda *g, o=optimizer: o.apply(list(g), variables)).get_concrete_function(*spec).graph
        scopes = {op.name.split("/")[1] for op in graph.get_operations() if "SGDRDecay" in op.name}
        counts[cls] = (len(scopes), len(graph.get_operations()))
    assert counts[keras.optimizers.AdamW][0] == len(SHAPES) + 1  # the updates' and each weight decay's
    assert counts[AdamW][0] == 1
    assert counts[AdamW][1] < counts[keras.optimizers.AdamW][1]


def test_learning_rate_reads_the_schedule_outside_a_step_and_can_be_set():
    optimizer = AdamW(learning_rate=0.5, weight_decay=0.0)
    assert float(optimizer.learning_rate) == 0.5
    optimizer.learning_rate = 0.25  # as the learning-rate finder does between steps
    assert float(optimizer.learning_rate) == 0.25
    scheduled = AdamW(learning_rate=_schedule())
    assert float(scheduled.learning_rate) == pytest.approx(5e-2)


def test_config_round_trip_and_registration():
    optimizer = AdamW(learning_rate=_schedule(), weight_decay=3e-4, global_clipnorm=1.0)
    config = keras.optimizers.serialize(optimizer)
    assert config["registered_name"] == "cold_keras>AdamW"
    restored = keras.optimizers.deserialize(config)
    assert type(restored) is AdamW
    assert restored.get_config() == optimizer.get_config()


TINY = dict(gru_units=4, gru_layers=1, latent_dim=4, seed=0)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.normal(size=(2, 6, 3)).astype("float32"),
        "visual": rng.normal(size=(2, 6, 2)).astype("float32"),
        "mask": np.ones((2, 6), "float32"),
        "valence": rng.uniform(-1, 1, (2, 6)).astype("float32"),
        "arousal": rng.uniform(-1, 1, (2, 6)).astype("float32"),
    }


def _trained(optimizer):
    model = build_model("cold_fusion", audio_dim=3, visual_dim=2, **TINY)
    model.compile(optimizer=optimizer)
    model.fit(_batch(), epochs=2, batch_size=2, verbose=0)
    return model


@pytest.mark.parametrize("saved_with", ["cold_keras", "keras"])
def test_keras_files_saved_with_either_adamw_load_with_their_optimizer_state(tmp_path, saved_with):
    cls = AdamW if saved_with == "cold_keras" else keras.optimizers.AdamW
    model = _trained(cls(learning_rate=_schedule(), weight_decay=1e-3))
    path = tmp_path / "model.keras"
    model.save(path)
    # EmotionModel's compile is its own, so Keras loads the model uncompiled; the file's compile config
    # names the optimiser, which deserialises to its class (cold_keras>AdamW is registered on import).
    loaded = keras.saving.load_model(path)
    optimizer_config = json.loads(zipfile.ZipFile(path).read("config.json"))["compile_config"]["optimizer"]
    optimizer = keras.optimizers.deserialize(optimizer_config)
    assert type(optimizer) is cls
    loaded.compile(optimizer=optimizer)
    loaded.load_weights(path)
    for a, e in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, e in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
    # Training goes on from the restored state.
    assert np.isfinite(loaded.train_on_batch(_batch(1), return_dict=True)["loss"])
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) + 1


def test_weights_saved_with_keras_adamw_restore_into_a_model_with_cold_keras_adamw(tmp_path):
    """What resuming a run interrupted before the change does (BackupAndRestore's weights file)."""
    model = _trained(keras.optimizers.AdamW(learning_rate=_schedule(), weight_decay=1e-3))
    path = tmp_path / "state.weights.h5"
    model.save_weights(path)
    resumed = build_model("cold_fusion", audio_dim=3, visual_dim=2, **TINY)
    resumed.compile(optimizer=AdamW(learning_rate=_schedule(), weight_decay=1e-3))
    resumed.load_weights(path)
    assert int(resumed.optimizer.iterations) == int(model.optimizer.iterations)
    for a, e in zip(resumed.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
