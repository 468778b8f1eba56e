"""Training set-up shared by the trainer, the tuner, the learning-rate finder and the benchmarks:
devices and precision, the training and validation datasets, the compiled model and its optimiser.

TensorFlow and Keras load inside the functions, so that importing this module (and argument
parsing in the commands that use it) stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import settings
from pipelines.core.errors import ConfigError
from pipelines.core.io_utils import read_json
from pipelines.data import features
from pipelines.runs.folders import training_delay_frames

# Global gradient-norm clipping of every model (`training.clipnorm`; see docs/training.md, "Training stability").
DEFAULT_CLIPNORM = settings.TrainingConfig().clipnorm


def setup_devices(distribute: str):
    """Creates the distribution strategy; must run before TensorFlow touches a device.

    `mirrored` uses every visible GPU, or two logical CPU devices on a machine without one
    (useful to check a multi-device setup on a laptop). `multiworker` reads `TF_CONFIG`.
    """
    import tensorflow as tf

    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        if not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            if len(tf.config.get_logical_device_configuration(cpu) or []) < 2:
                try:
                    tf.config.set_logical_device_configuration(
                        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
                    )
                except RuntimeError as error:
                    raise ConfigError(
                        "--distribute mirrored without a GPU needs two logical CPU devices, "
                        f"which can only be set up before TensorFlow starts ({error})"
                    ) from None
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices=devices)
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("--distribute multiworker needs the TF_CONFIG environment variable (see docs/performance.md)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def setup_precision(mode: str) -> str:
    """Sets the global Keras dtype policy; returns its name."""
    import keras
    import tensorflow as tf

    if mode == "auto":
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    elif mode == "off":
        policy = "float32"
    else:
        policy = f"mixed_{mode}"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def is_chief() -> bool:
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = tf_config.get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in tf_config.get("cluster", {})
    )


def monitor_name(task: str) -> str:
    return "val_ccc_mean" if task == "regression" else "val_f1_macro"


@dataclasses.dataclass
class TrainingInputs:
    """What `make_training_inputs` returns: the datasets `fit` takes and what the model needs.

    `train_ds` is one epoch (endless with oversampling), reshuffled on every pass; `train_stream(epoch,
    step)` the run's batches from step `step` of epoch `epoch` on (`input_pipeline.epoch_stream`),
    each epoch a pure function of the seed and its number: the trainer's, so that a resumed run
    sees the batches an uninterrupted one would."""

    train_ds: object
    val_ds: object
    steps_per_epoch: int
    manifest: dict
    validation: str
    sequence_level: bool
    train_stream: object = None


def make_training_inputs(config, artifact_dir) -> TrainingInputs:
    """Training and validation datasets for `fit`, shared by the trainer and the tuner.

    The targets are merged into the features: they are inputs of the training graph.
    Raises ConfigError when the validation partition is missing or unlabelled.
    """
    from pipelines.components import input_pipeline

    config = settings.as_run_config(config)
    manifest = read_json(Path(artifact_dir) / "manifest.json")
    training, task = config.training, config.task
    sequence_level = bool(manifest["partitions"][features.TRAIN].get("sequence_level", False))
    validation = training.validation_partition
    if validation not in manifest["partitions"] or not manifest["partitions"][validation].get("labelled", True):
        raise ConfigError(
            f"the validation partition {validation!r} is missing or unlabelled in this corpus",
            Path(artifact_dir) / "manifest.json",
        )

    window = dict(window_seconds=float(training.window_seconds), window_hop_seconds=training.window_hop_seconds)
    delay = training_delay_frames(config, artifact_dir)
    batch_size = int(training.batch_size)
    raw = config.raw if config_lib.mode_of(config) == "raw" else None
    train_options = dict(
        task=task,
        augment=training.augment,  # optional: unset = no augmentation
        oversample=bool(training.oversample),
        seed=int(training.seed),
        raw_augment=raw.augment if raw is not None else None,
        label_delay_frames=delay,
        corruption_targets=bool(config.model.lambda_reliability),
        **window,
    )
    train_ds = input_pipeline.make_dataset(
        artifact_dir, features.TRAIN, training=True, batch_size=batch_size, **train_options
    )
    steps_per_epoch = input_pipeline.count_batches(
        artifact_dir, features.TRAIN, batch_size=batch_size, label_delay_frames=delay, **window
    )
    if bool(training.oversample):
        train_ds = train_ds.repeat()
    val_ds = input_pipeline.make_dataset(
        artifact_dir, validation, training=False, batch_size=batch_size, task=task, label_delay_frames=delay
    )
    merge = lambda x, y: ({**x, **y},)  # noqa: E731 - targets are inputs of the training graph

    def train_stream(epoch, step):
        stream = input_pipeline.epoch_stream(
            artifact_dir,
            features.TRAIN,
            start_epoch=epoch,
            start_step=step,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            **train_options,
        )
        return stream.map(merge)

    return TrainingInputs(
        train_ds.map(merge), val_ds.map(merge), steps_per_epoch, manifest, validation, sequence_level, train_stream
    )


def build_compiled_model(config, manifest: dict, artifact_dir, steps_per_epoch: int, strategy=None):
    """Builds and compiles the training model; the one model-building function of trainer and tuner.

    The lambdas and every other model hyperparameter come from `config.model`, the learning
    rate from `config.training`, so tuned values enter by an updated config (`RunConfig.updated`). The optimiser is
    AdamW with cosine decay and warm restarts, and is built here so that `BackupAndRestore` can
    restore its state.

    Args:
        config: RunConfig (or a mapping parsed into one). The resolved configuration.
        manifest: dict. The artefact directory's `manifest.json`.
        artifact_dir: path of the data artefacts (normalisation statistics, class weights).
        steps_per_epoch: int. Batches per training epoch (sets the restart period).
        strategy: `tf.distribute.Strategy` or None for the current one.
    """
    import keras
    import tensorflow as tf

    from cold_keras.models import build_model
    from pipelines.components import input_pipeline, transform

    config = settings.as_run_config(config)
    training, task = config.training, config.task
    hp = config_lib.model_hyperparameters(config)
    norms = transform.load_normalization(artifact_dir)
    hp["audio_norm"] = norms[features.AUDIO]
    hp["visual_norm"] = norms[features.VISUAL]
    if hp["reliability_atypicality"] and config.model.name == "cold_fusion":
        if config_lib.mode_of(config) == "raw":
            raise ConfigError(
                "model.reliability_atypicality works on feature inputs; a raw-mode run's visual inputs are face crops"
            )
        from pipelines.evaluation import fusion_guard as reliability

        hp.update(reliability.atypicality_references(artifact_dir, norms))
    if task == "classification":
        hp["class_weights"] = input_pipeline.class_weights(artifact_dir)
    hp["seed"] = int(training.seed)
    sequence_level = bool(manifest["partitions"][features.TRAIN].get("sequence_level", False))

    with (strategy or tf.distribute.get_strategy()).scope():
        if config_lib.mode_of(config) == "raw":
            model = build_raw(config, manifest, task, sequence_level, hp)
        else:
            model = build_model(
                config.model.name,
                audio_dim=manifest["audio_dim"],
                visual_dim=manifest["visual_dim"],
                task=task,
                sequence_level=sequence_level,
                **hp,
            )
            if hp["reliability_correspondence"] and config.model.name == "cold_fusion":
                prefit_correspondence(model, artifact_dir, norms, hp["seed"])
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            initial_learning_rate=float(training.learning_rate),
            first_decay_steps=max(1, int(round(float(training.restart_period_epochs) * steps_per_epoch))),
            t_mul=float(training.restart_period_mul),
        )
        from cold_keras.optimizers import AdamW  # Keras' AdamW evaluating the schedule once per step

        optimizer = AdamW(learning_rate=schedule, **optimizer_options(training))
        # With a moving average, fit's end keeps the training weights (a resumed run fits twice); the
        # trainer validates, checkpoints and scores the averages (`AveragedValidation`, `BestCheckpoint`).
        optimizer.finalize_to_average = False
        model.compile(optimizer=optimizer)
        # BackupAndRestore restores optimizer state only into built variables.
        optimizer.build(model.trainable_variables)
    return model


def prefit_correspondence(model, artifact_dir, norms, seed: int) -> None:
    """Fits `model.reliability_correspondence`'s scorer alone on the training partition before the
    fit (`cold_keras.layers.correspondence.prefit_correspondence`): no labels, no corruption."""
    from cold_keras.layers.correspondence import prefit_correspondence as prefit
    from pipelines.evaluation import fusion_guard as reliability

    data = reliability.standardised_features(artifact_dir, norms)
    layer = model.get_layer("audio_visual_correspondence")
    loss = prefit(layer, data[features.AUDIO], data[features.VISUAL], seed=seed)
    print(f"audio-visual correspondence: pre-fitted on the training partition, loss {loss:.3f}")


def optimizer_options(training) -> dict:
    """AdamW's keyword arguments besides the learning rate: weight decay and gradient clipping.

    `training`: the TrainingConfig (or a `training` mapping, checked). `training.clipnorm` (default
    `DEFAULT_CLIPNORM`) clips the gradient of every step to that global norm (over all weights
    together); 0 or null turns clipping off. `training.ema_momentum` > 0 keeps an exponential moving
    average of the weights with that momentum per step (Keras' `use_ema`); 0 (the default) keeps none.
    """
    if not isinstance(training, settings.TrainingConfig):
        training = settings.parse_section(settings.TrainingConfig, training, "training")
    clipnorm = training.clipnorm
    options = {"weight_decay": float(training.weight_decay)}
    if clipnorm:
        options["global_clipnorm"] = float(clipnorm)
    if training.ema_momentum:
        options.update(use_ema=True, ema_momentum=float(training.ema_momentum))
    return options


def build_raw(config, manifest, task, sequence_level, hp):
    """`build_raw_model` with the `raw` section; a bad backbone weight file is a one-line ConfigError."""
    from cold_keras.backbones import BackboneWeightsError
    from cold_keras.models import build_raw_model

    if manifest.get("mode") != "raw":
        raise ConfigError("mode raw, but the data artefacts hold per-frame features", manifest.get("corpus_root"))
    config = settings.as_run_config(config)
    raw = config.raw or settings.RawConfig()
    try:
        return build_raw_model(
            config.model.name,
            face_shape=manifest["visual_shape"],
            patch_shape=manifest["audio_shape"],
            task=task,
            sequence_level=sequence_level,
            visual_backbone=raw.visual_backbone,
            audio_backbone=raw.audio_backbone,
            visual_backbone_weights=raw.visual_backbone_weights,
            audio_backbone_weights=raw.audio_backbone_weights,
            **hp,
        )
    except BackboneWeightsError as error:
        raise ConfigError(error.reason, error.path) from None
