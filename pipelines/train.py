"""Trainer: `python -m pipelines.train --dataset {avec,iemocap,synthetic} ...`.

Runs (or reuses) the data components, trains the chosen model with the paper's optimisation
(AdamW, cosine decay with warm restarts), keeps the best checkpoint on the validation partition,
evaluates it on every labelled non-train partition and writes the run directory:

    config.json  checkpoints/  backup/  tensorboard/  history.csv  model.keras
    metrics.json  predictions/<partition>/<name>.csv

Killing the process and running the same command again resumes from the last finished epoch.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path

from pipelines import cli, example_gen, features
from pipelines import config as config_lib
from pipelines.errors import ColdKerasError, ConfigError, cli_main
from pipelines.io_utils import read_json, write_json_atomic
from pipelines.pause import pause_callback
from pipelines.run_checks import backup_settings, epochs_extension, resume_point_of

RUN_FILES = ("config.json", "model.keras", "metrics.json", "history.csv")
# Global gradient-norm clipping of every model (`training.clipnorm`; see README, "Training stability").
DEFAULT_CLIPNORM = 1.0


# --------------------------------------------------------------------------- configuration


def build_config(args) -> dict:
    """Resolves the run's configuration: dataset file (+ its raw-mode file in raw mode), then
    --config, then --hparams, then flags."""
    config = config_lib.load_file(config_lib.default_config_path(args.dataset))
    user = config_lib.load_file(args.config) if args.config else {}
    mode = getattr(args, "mode", None) or user.get("mode") or config_lib.mode_of(config)
    raw_path = config_lib.raw_config_path(args.dataset) if mode == "raw" else None
    if raw_path is not None:
        config = config_lib.deep_update(config, config_lib.load_file(raw_path))
    if args.config:
        config = config_lib.deep_update(config, user)
    if mode != config_lib.mode_of(config):
        config["mode"] = mode
    if args.hparams:
        config = config_lib.deep_update(config, config_lib.load_hparams(args.hparams))
    config["dataset"] = args.dataset
    overrides = {
        ("data_dir",): args.data_dir,
        ("features_dir",): getattr(args, "features_dir", None),
        ("allow_missing_modality",): True if getattr(args, "allow_missing_modality", False) else None,
        ("strict",): getattr(args, "strict", None),
        ("task",): args.task,
        ("model", "name"): args.model,
        ("model", "lambda_co_visual"): args.lambda_co_visual,
        ("model", "lambda_co_audio"): args.lambda_co_audio,
        ("model", "lambda_co_cross"): args.lambda_co_cross,
        ("model", "lambda_regu"): args.lambda_regu,
        ("model", "weight_convention"): getattr(args, "weight_convention", None),
        ("model", "lambda_weight"): getattr(args, "lambda_weight", None),
        ("training", "epochs"): args.epochs,
        ("training", "batch_size"): args.batch_size,
        ("training", "learning_rate"): args.learning_rate,
        ("training", "mixed_precision"): args.mixed_precision,
        ("training", "distribute"): args.distribute,
        ("training", "seed"): args.seed,
        ("training", "window_seconds"): getattr(args, "window_seconds", None),
        ("training", "label_delay_seconds"): getattr(args, "label_delay", None),
        ("raw", "visual_backbone_weights"): _absolute(getattr(args, "visual_backbone_weights", None)),
        ("raw", "audio_backbone_weights"): _absolute(getattr(args, "audio_backbone_weights", None)),
    }
    for path, value in overrides.items():
        if value is None:
            continue
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    if args.audio_features is not None:
        config.setdefault("features", {})["audio"] = _split(args.audio_features)
    if args.visual_features is not None:
        config.setdefault("features", {})["visual"] = _split(args.visual_features)
    for section in ("model", "training"):
        config.setdefault(section, {})
    return config_lib.validate(config, args.config or str(config_lib.default_config_path(args.dataset)))


def _split(value):
    return [part.strip() for part in value.split(",") if part.strip()]


def _absolute(path):
    return None if path is None else str(Path(path).expanduser().resolve())


def default_output_dir(config) -> Path:
    """`runs/<dataset>_<model>_<task>` (`runs/<dataset>_raw_...` in raw mode): the same command
    always resumes the same run."""
    dataset = config["dataset"] + ("_raw" if config_lib.mode_of(config) == "raw" else "")
    return Path("runs") / f"{dataset}_{config['model']['name']}_{config['task']}"


# --------------------------------------------------------------------------- runtime setup


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
        raise ConfigError("--distribute multiworker needs the TF_CONFIG environment variable (see README)")
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


# --------------------------------------------------------------------------- the run


def _check_run_dir(run_dir: Path, config: dict, overwrite: bool) -> bool:
    """Returns True when the run directory holds a finished run with the same settings."""
    saved_path = run_dir / "config.json"
    if overwrite and run_dir.exists():
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in ("backup", "checkpoints", "tensorboard", "predictions"):
            shutil.rmtree(run_dir / name, ignore_errors=True)
        return False
    if not saved_path.exists():
        return False
    saved = read_json(saved_path)
    saved.pop("runtime", None)
    if saved != config_lib.comparable_settings(config) and _continue_for_more_epochs(run_dir, saved, config):
        return False
    if saved != config_lib.comparable_settings(config):
        changed = config_lib.first_difference(saved, config_lib.comparable_settings(config))
        raise ConfigError(
            f"holds a run with different settings ({changed}); pass another --output-dir, or --overwrite "
            "to start this one afresh",
            run_dir,
        )
    return (run_dir / "metrics.json").exists()


def _continue_for_more_epochs(run_dir: Path, saved: dict, config: dict) -> bool:
    """True when `config` only asks for more epochs than the run in `run_dir` (finished or not):
    the run then continues from its last backup for the extra epochs, and its metrics.json, which
    describes the shorter run, is removed. Raises ConfigError when a finished run has no backup."""
    extension = epochs_extension(saved, config_lib.comparable_settings(config))
    if extension is None:
        return False
    old, new = extension
    if (run_dir / "metrics.json").exists():
        if resume_point_of(run_dir / "backup") is None:
            raise ConfigError(
                f"holds a finished {old}-epoch run without its last-epoch backup (backup/), so it "
                f"cannot be continued to {new} epochs; pass --overwrite to train {new} epochs afresh",
                run_dir,
            )
        (run_dir / "metrics.json").unlink()
    print(f"continuing the {old}-epoch run in {run_dir} to {new} epochs (--epochs {new})")
    return True


def best_so_far(history_path: Path, monitor: str):
    if not history_path.exists():
        return None
    values = []
    with open(history_path) as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row.get(monitor, "nan"))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    return max(values) if values else None


def monitor_name(task: str) -> str:
    return "val_ccc_mean" if task == "regression" else "val_f1_macro"


@dataclasses.dataclass
class TrainingInputs:
    """What `make_training_inputs` returns: the datasets `fit` takes and what the model needs."""

    train_ds: object
    val_ds: object
    steps_per_epoch: int
    manifest: dict
    validation: str
    sequence_level: bool


def make_training_inputs(config: dict, artifact_dir) -> TrainingInputs:
    """Training and validation datasets for `fit`, shared by the trainer and the tuner.

    The targets are merged into the features: they are inputs of the training graph.
    Raises ConfigError when the validation partition is missing or unlabelled.
    """
    from pipelines import input_pipeline

    manifest = read_json(Path(artifact_dir) / "manifest.json")
    training, task = config["training"], config["task"]
    sequence_level = bool(manifest["partitions"][features.TRAIN].get("sequence_level", False))
    validation = training["validation_partition"]
    if validation not in manifest["partitions"] or not manifest["partitions"][validation].get("labelled", True):
        raise ConfigError(
            f"the validation partition {validation!r} is missing or unlabelled in this corpus",
            Path(artifact_dir) / "manifest.json",
        )

    window = dict(
        window_seconds=float(training["window_seconds"]), window_hop_seconds=training.get("window_hop_seconds")
    )
    delay = training_delay_frames(config, artifact_dir)
    batch_size = int(training["batch_size"])
    raw_augment = (config.get("raw") or {}).get("augment") if config_lib.mode_of(config) == "raw" else None
    train_ds = input_pipeline.make_dataset(
        artifact_dir,
        features.TRAIN,
        training=True,
        batch_size=batch_size,
        task=task,
        augment=training.get("augment"),
        oversample=bool(training.get("oversample")),
        seed=int(training["seed"]),
        raw_augment=raw_augment,
        label_delay_frames=delay,
        corruption_targets=bool(config["model"].get("lambda_reliability")),
        **window,
    )
    steps_per_epoch = input_pipeline.count_batches(
        artifact_dir, features.TRAIN, batch_size=batch_size, label_delay_frames=delay, **window
    )
    if bool(training.get("oversample")):
        train_ds = train_ds.repeat()
    val_ds = input_pipeline.make_dataset(
        artifact_dir, validation, training=False, batch_size=batch_size, task=task, label_delay_frames=delay
    )
    merge = lambda x, y: ({**x, **y},)  # noqa: E731 - targets are inputs of the training graph
    return TrainingInputs(train_ds.map(merge), val_ds.map(merge), steps_per_epoch, manifest, validation, sequence_level)


def training_delay_frames(config: dict, artifact_dir) -> int:
    """`training.label_delay_seconds` in frames of the run's data (`pipelines.label_delay`)."""
    from pipelines import example_gen, label_delay

    seconds = label_delay.seconds_of(config)
    if not seconds:
        return 0
    return label_delay.delay_frames(seconds, example_gen.partition_info(artifact_dir, features.TRAIN)["hop"])


def build_compiled_model(config: dict, manifest: dict, artifact_dir, steps_per_epoch: int, strategy=None):
    """Builds and compiles the training model; the one model-building function of trainer and tuner.

    The lambdas and every other model hyperparameter come from `config["model"]`, the learning
    rate from `config["training"]`, so tuned values enter by updating the config. The optimiser is
    AdamW with cosine decay and warm restarts, and is built here so that `BackupAndRestore` can
    restore its state.

    Args:
        config: dict. The resolved configuration.
        manifest: dict. The artefact directory's `manifest.json`.
        artifact_dir: path of the data artefacts (normalisation statistics, class weights).
        steps_per_epoch: int. Batches per training epoch (sets the restart period).
        strategy: `tf.distribute.Strategy` or None for the current one.
    """
    import keras
    import tensorflow as tf

    from cold_keras.models import build_model
    from pipelines import input_pipeline, transform

    training, task = config["training"], config["task"]
    hp = config_lib.model_hyperparameters(config)
    norms = transform.load_normalization(artifact_dir)
    hp["audio_norm"] = norms[features.AUDIO]
    hp["visual_norm"] = norms[features.VISUAL]
    if task == "classification":
        hp["class_weights"] = input_pipeline.class_weights(artifact_dir)
    hp["seed"] = int(training["seed"])
    sequence_level = bool(manifest["partitions"][features.TRAIN].get("sequence_level", False))

    with (strategy or tf.distribute.get_strategy()).scope():
        if config_lib.mode_of(config) == "raw":
            model = _build_raw(config, manifest, task, sequence_level, hp)
        else:
            model = build_model(
                config["model"]["name"],
                audio_dim=manifest["audio_dim"],
                visual_dim=manifest["visual_dim"],
                task=task,
                sequence_level=sequence_level,
                **hp,
            )
        schedule = keras.optimizers.schedules.CosineDecayRestarts(
            initial_learning_rate=float(training["learning_rate"]),
            first_decay_steps=max(1, int(round(float(training.get("restart_period_epochs", 1)) * steps_per_epoch))),
            t_mul=float(training.get("restart_period_mul", 2.0)),
        )
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, **optimizer_options(training))
        model.compile(optimizer=optimizer)
        # BackupAndRestore restores optimizer state only into built variables.
        optimizer.build(model.trainable_variables)
    return model


def optimizer_options(training: dict) -> dict:
    """AdamW's keyword arguments besides the learning rate: weight decay and gradient clipping.

    `training.clipnorm` (default `DEFAULT_CLIPNORM`) clips the gradient of every step to that
    global norm (over all weights together); 0 or null turns clipping off.
    """
    clipnorm = training.get("clipnorm", DEFAULT_CLIPNORM)
    options = {"weight_decay": float(training.get("weight_decay", 1e-4))}
    if clipnorm:
        options["global_clipnorm"] = float(clipnorm)
    return options


def _build_raw(config, manifest, task, sequence_level, hp):
    """`build_raw_model` with the `raw` section; a bad backbone weight file is a one-line ConfigError."""
    from cold_keras.backbones import BackboneWeightsError
    from cold_keras.models import build_raw_model

    if manifest.get("mode") != "raw":
        raise ConfigError("mode raw, but the data artefacts hold per-frame features", manifest.get("corpus_root"))
    raw = config.get("raw") or {}
    try:
        return build_raw_model(
            config["model"]["name"],
            face_shape=manifest["visual_shape"],
            patch_shape=manifest["audio_shape"],
            task=task,
            sequence_level=sequence_level,
            visual_backbone=raw.get("visual_backbone"),
            audio_backbone=raw.get("audio_backbone"),
            visual_backbone_weights=raw.get("visual_backbone_weights"),
            audio_backbone_weights=raw.get("audio_backbone_weights"),
            **hp,
        )
    except BackboneWeightsError as error:
        raise ConfigError(error.reason, error.path) from None


def run(config: dict, output_dir, *, overwrite=False, progress=True) -> dict:
    """Trains and evaluates one run; returns the metrics dict written to `metrics.json`."""
    run_dir = Path(output_dir)
    if _check_run_dir(run_dir, config, overwrite):
        metrics = read_json(run_dir / "metrics.json")
        print(f"{run_dir} already holds a finished run with these settings (pass --overwrite to train again)")
        return metrics

    from pipelines import prepare

    prepare.check_inputs(config)
    backup_every = backup_settings(config["training"])
    if config_lib.mode_of(config) == "raw":
        from pipelines import raw_augment

        raw_augment.validate_config((config.get("raw") or {}).get("augment"))
    training = config["training"]
    strategy = setup_devices(training["distribute"])
    policy = setup_precision(training["mixed_precision"])

    import keras

    from cold_keras.models import inference_model
    from pipelines import evaluation, input_pipeline, label_delay
    from pipelines.backup import EpochLine, StepBackup, fit_resuming
    from pipelines.callbacks import InterruptGuard, NanGuard, TensorBoardExtras
    from pipelines.stability import CollapseGuard

    keras.utils.set_random_seed(int(training["seed"]))
    artifact_dir = prepare.prepare_artifacts(config, progress=progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    chief = is_chief()
    config_out = {
        **config_lib.comparable_settings(config),
        "runtime": {
            "artifact_dir": str(artifact_dir),
            "policy": policy,
            "replicas": strategy.num_replicas_in_sync,
            "corpus_fingerprint": prepare.corpus_fingerprint(artifact_dir),
        },
    }
    if chief:
        write_json_atomic(run_dir / "config.json", config_out)

    task = config["task"]
    inputs = make_training_inputs(config, artifact_dir)
    manifest, validation = inputs.manifest, inputs.validation
    sequence_level, steps_per_epoch = inputs.sequence_level, inputs.steps_per_epoch
    train_ds, val_ds = inputs.train_ds, inputs.val_ds
    model = build_compiled_model(config, manifest, artifact_dir, steps_per_epoch, strategy=strategy)

    monitor = monitor_name(task)
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    best_path = checkpoints / "best.weights.h5"
    nan_guard = NanGuard()
    callbacks = [
        StepBackup(run_dir / "backup", *backup_every),
        keras.callbacks.ModelCheckpoint(
            str(best_path),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far(run_dir / "history.csv", monitor),
        ),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), separator=",", append=True),
        nan_guard,
        CollapseGuard(),
        InterruptGuard(),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), histogram_freq=0, write_graph=False),
    ]
    callbacks.append(pause_callback("train.epoch"))
    figure_recording = next(iter(input_pipeline.iter_recordings(artifact_dir, validation)), None)
    infer = inference_model(model)
    if figure_recording is not None and chief:
        callbacks.append(TensorBoardExtras(run_dir / "tensorboard" / "validation" / "extras", infer, figure_recording))

    epoch_line = EpochLine(monitor, int(training["epochs"]), steps_per_epoch, bar=progress)
    callbacks.append(epoch_line)
    started = time.time()
    fit_resuming(
        model,
        train_ds,
        validation_data=val_ds,
        epochs=int(training["epochs"]),
        steps_per_epoch=steps_per_epoch,
        repeated=bool(training.get("oversample")),
        backup=callbacks[0],
        callbacks=callbacks,
        epoch_line=epoch_line,
        verbose=0,
    )
    if nan_guard.failed:
        raise ColdKerasError(
            f"training stopped: {nan_guard.failed}. The last good epoch is kept in "
            f"{run_dir / 'backup'}; lower the learning rate or the lambdas and run again"
        )
    train_seconds = time.time() - started

    if best_path.exists():
        model.load_weights(str(best_path))
    if config["model"].get("fusion_guard"):
        from pipelines import reliability

        reliability.apply_fusion_guard(
            model, infer, list(input_pipeline.iter_recordings(artifact_dir, validation)), task, sequence_level, run_dir
        )
    if chief:
        tmp = run_dir / ".model.keras.tmp.keras"
        model.save(str(tmp))
        os.replace(tmp, run_dir / "model.keras")

    metrics, temperatures = {}, None
    partitions = [
        p
        for p in (validation, features.DEVEL, features.TEST)
        if p in manifest["partitions"] and p != features.TRAIN and manifest["partitions"][p].get("labelled")
    ]
    for partition in dict.fromkeys(partitions):
        predictions = evaluation.predict_recordings(
            infer, input_pipeline.iter_recordings(artifact_dir, partition), progress=progress and f"predict {partition}"
        )
        predictions = list(label_delay.shift_predictions(predictions, training_delay_frames(config, artifact_dir)))
        scores, fitted = evaluation.score_partition(
            predictions, task=task, sequence_level=sequence_level, temperatures=temperatures
        )
        if partition == validation:
            temperatures = fitted  # temperature scaling is fitted on the validation partition only
        metrics[partition] = scores
        if chief:
            evaluation.write_prediction_csvs(
                predictions, run_dir / "predictions" / partition, task=task, sequence_level=sequence_level
            )
    if chief:
        write_json_atomic(run_dir / "metrics.json", metrics)  # backup/ stays: --epochs N continues from it
    print(f"\ntrained {config['model']['name']} ({task}) in {train_seconds:.0f} s; run directory: {run_dir}")
    print(evaluation.format_table(metrics, task))
    return metrics


# --------------------------------------------------------------------------- command line


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the trainer and the tuner."""
    parser.add_argument(
        "--dataset",
        required=True,
        choices=config_lib.DATASETS,
        help="corpus adapter; `synthetic` is generated on first use",
    )
    parser.add_argument("--data-dir", help="corpus folder (required for avec and iemocap unless set in the config)")
    parser.add_argument("--features-dir", help="IEMOCAP: folder of per-utterance feature files")
    parser.add_argument(
        "--config", help="YAML file overriding configs/<dataset>.yaml (e.g. configs/cold_reliable.yaml)"
    )
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="mark recordings/frames/utterances without a modality's features as absent "
        "(presence flag 0, fusion weight 0) instead of failing",
    )
    example_gen.add_strictness_arguments(parser)
    parser.add_argument("--model", choices=features.MODEL_NAMES, help="model to train (default from the config)")
    parser.add_argument("--task", choices=config_lib.TASKS, help="regression (CCC) or 3-way classification")
    parser.add_argument("--audio-features", help="comma-separated audio feature folders (AVEC)")
    parser.add_argument("--visual-features", help="comma-separated visual feature folders (AVEC)")
    parser.add_argument(
        "--epochs",
        type=cli.positive_int,
        help="training epochs (default from the config); on a finished or interrupted run, a "
        "larger value continues it for the extra epochs",
    )
    parser.add_argument("--batch-size", type=cli.positive_int, help="windows per batch (default from the config)")
    parser.add_argument(
        "--learning-rate",
        type=cli.positive_float,
        help="peak learning rate of AdamW's cosine schedule (default from the config)",
    )
    parser.add_argument("--window-seconds", type=cli.positive_float, help="training window length (default 30 s)")
    parser.add_argument(
        "--label-delay",
        type=cli.non_negative_float,
        metavar="SECONDS",
        help="annotation delay: pair the features at t with the labels at t + SECONDS; "
        "predictions and scores are shifted back onto the labels' timeline (default 0)",
    )
    parser.add_argument(
        "--lambda-co-visual", type=cli.non_negative_float, help="weight of the visual intramodal calibration term"
    )
    parser.add_argument(
        "--lambda-co-audio", type=cli.non_negative_float, help="weight of the audio intramodal calibration term"
    )
    parser.add_argument(
        "--lambda-co-cross", type=cli.non_negative_float, help="weight of the crossmodal calibration term"
    )
    parser.add_argument("--lambda-regu", type=cli.non_negative_float, help="weight of the KL regulariser")
    parser.add_argument(
        "--weight-convention",
        choices=config_lib.WEIGHT_CONVENTIONS,
        help="COLD fusion weights: informativeness (paper) or uncertainty",
    )
    parser.add_argument(
        "--lambda-weight",
        type=cli.non_negative_float,
        help="weight of the fused-weight calibration term (0 = the paper's objective)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=config_lib.MIXED_PRECISION,
        type=config_lib.mixed_precision_choice,
        help="auto = mixed_float16 on a GPU, float32 on CPU; bfloat16 = mixed_bfloat16 "
        "(Keras's policy names are accepted too)",
    )
    parser.add_argument(
        "--distribute",
        choices=config_lib.DISTRIBUTE,
        help="mirrored: all GPUs (2 logical CPUs without one); multiworker: TF_CONFIG",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of weights, shuffling and augmentation (default from the config)"
    )
    parser.add_argument("--hparams", help="JSON of tuned hyperparameters from `pipelines.tune`")
    parser.add_argument(
        "--mode",
        choices=config_lib.MODES,
        help="features: per-frame feature vectors (default); raw: end to end from face crops "
        "and audio through CNN backbones (synthetic corpus; configs/<dataset>_raw.yaml)",
    )
    parser.add_argument(
        "--visual-backbone-weights",
        metavar="FILE.npz",
        help="raw mode: pretrained face-CNN weights (.npz, see README); only its last two dense "
        "layers are then trained. Default: train from scratch",
    )
    parser.add_argument(
        "--audio-backbone-weights",
        metavar="FILE.npz",
        help="raw mode: pretrained VGGish weights (.npz); only its last two dense layers are "
        "then trained. Default: train from scratch",
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.train",
        description="Train a COLD fusion (or baseline) model and evaluate it. "
        "Example: python -m pipelines.train --dataset synthetic",
        formatter_class=cli.HelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--output-dir",
        help="run directory (default runs/<dataset>_<model>_<task>); the same directory resumes an interrupted run",
    )
    parser.add_argument("--overwrite", action="store_true", help="discard an existing run in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    parser.add_argument(
        "--find-lr",
        action="store_true",
        help="instead of training: learning-rate range test (exponential sweep, one rate per step) "
        "writing <output-dir>/lr_find/lr_find.png and printing a suggested --learning-rate; "
        "the run itself is not touched",
    )
    parser.add_argument("--find-lr-min", type=float, default=1e-5, help="first learning rate of the sweep")
    parser.add_argument("--find-lr-max", type=float, default=1.0, help="last learning rate of the sweep")
    parser.add_argument(
        "--find-lr-steps",
        type=int,
        default=200,
        help="training steps of the sweep (it stops early once the loss diverges)",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    config = build_config(args)
    backup_settings(config["training"], args.config or str(config_lib.default_config_path(args.dataset)))
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(config)
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default run directory")
    if args.find_lr:
        from pipelines import lr_finder

        lr_finder.run(
            config,
            output_dir,
            min_lr=args.find_lr_min,
            max_lr=args.find_lr_max,
            steps=args.find_lr_steps,
            progress=not args.quiet,
        )
        return
    run(config, output_dir, overwrite=args.overwrite, progress=not args.quiet)


if __name__ == "__main__":
    main()
