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
import math
import os
import shutil
import time
from pathlib import Path

from pipelines import cli, features
from pipelines import config as config_lib
from pipelines.errors import ColdKerasError, ConfigError, cli_main
from pipelines.io_utils import read_json, write_json_atomic
from pipelines.pause import pause_callback
from pipelines.run_checks import backup_settings, epochs_extension, resume_point_of
from pipelines.run_options import add_common_arguments, build_config, default_output_dir
from pipelines.training_setup import (
    build_compiled_model,
    is_chief,
    make_training_inputs,
    monitor_name,
    setup_devices,
    setup_precision,
    training_delay_frames,
)

RUN_FILES = ("config.json", "model.keras", "metrics.json", "history.csv")


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
        repeated=bool(training["oversample"]),
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
    if config["model"]["fusion_guard"]:
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
