"""Tuner: `python -m pipelines.tune --dataset {avec,iemocap,synthetic} --tuner random --max-trials 20`.

Searches COLD fusion's four loss weights and optionally the learning rate and the annotation delay
with KerasTuner (`--search`; the searched values and their ranges: `pipelines.training.search_space`).
Every trial builds its model with `pipelines.training.setup.build_compiled_model`, the trainer's own
model-building function, and trains on the trainer's datasets; the objective is the trainer's
monitored metric (`val_ccc_mean`, or `val_f1_macro` for classification). KerasTuner clears the Keras
session before it builds each trial's model, and each trial gets NaN guarding and a TensorBoard log.
The output directory holds:

    config.json  best_hparams.json  search/ (KerasTuner project)  backups/<trial_id>/
    tensorboard/<trial_id>/execution0/ (scalars + the HParams dashboard)

`best_hparams.json` is what `python -m pipelines.train --hparams FILE` takes. Running the same
command again resumes the search: finished trials are kept, an interrupted trial restarts from its
last finished epoch, and a larger `--max-trials` adds only the missing trials.

Distributed search uses KerasTuner's chief/worker protocol (`pipelines.training.tuner`): start the
same command on every process with `KERASTUNER_TUNER_ID` ("chief" for the process that runs the
oracle, "tuner0", "tuner1", ... for the workers), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`
set. The trial table and the HParams dashboard: `pipelines.training.tune_report`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import flags as run_options
from pipelines.config.settings import as_run_config
from pipelines.core.errors import ColdKerasError, ConfigError
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.core.pause import pause_callback
from pipelines.training import setup as training_setup
from pipelines.training import tuner as tuner_lib
from pipelines.training.search_space import (
    LABEL_DELAY,
    make_hypermodel,
    parse_delay_choices,
    parse_search,
    searched_names,
)
from pipelines.training.tune_report import format_trials, trial_rows, write_hparams_experiment

DEFAULT_PROJECT = "search"


def default_output_dir(config) -> Path:
    """`tuning/<dataset>_<model>_<task>` (`tuning/<dataset>_raw_...` in raw mode): the same command
    always resumes the same search."""
    return Path("tuning") / run_options.default_output_dir(config).name


def _check_output_dir(output_dir: Path, settings: dict, overwrite: bool) -> None:
    saved = output_dir / "config.json"
    if overwrite or not saved.exists():
        return
    old = read_json(saved)
    old.pop("runtime", None)
    if old != settings:
        changed = config_lib.first_difference(old, settings)
        raise ConfigError(
            f"holds a search with different settings ({changed}); pass another --output-dir, or "
            "--overwrite to start this one afresh",
            output_dir,
        )


def run(
    config,
    output_dir,
    *,
    tuner="random",
    max_trials=10,
    tune_learning_rate=False,
    project_name=DEFAULT_PROJECT,
    overwrite=False,
    progress=True,
    search=None,
    label_delay_choices=None,
) -> dict:
    """Runs (or resumes) a search; returns {"best": best_hparams dict or None, "trials": rows}.

    `config`: a RunConfig, or a mapping parsed into one.
    `search`: optional groups (`parse_search`); `label_delay_choices`: the delays in seconds
    (default 0, 1, 2, 3, 4) a `label_delay` search picks from.

    On a distributed worker the trials it ran are reported to the chief, which writes
    `best_hparams.json`; the worker returns {"best": None, "trials": []}.
    """
    if tuner not in tuner_lib.TUNERS:
        raise ConfigError(f"unknown tuner {tuner!r}; choose one of {', '.join(tuner_lib.TUNERS)}")
    if tuner == "bayesian" and importlib.util.find_spec("sklearn") is None:
        raise ConfigError(
            "--tuner bayesian needs scikit-learn (KerasTuner's Gaussian process): "
            "pip install 'keras-tuner[bayesian]==1.4.8', or use --tuner random or hyperband"
        )
    if int(max_trials) < 1:
        raise ConfigError(f"--max-trials must be at least 1, got {max_trials}")
    tuner_lib.check_distributed_env()
    config = as_run_config(config)
    search = parse_search(search) if isinstance(search, str) else search
    names = searched_names(config, tune_learning_rate, search)
    delay_choices = parse_delay_choices(label_delay_choices)
    training = config.training
    if training.distribute == "multiworker":
        raise ConfigError(
            "the tuner runs each trial in one process (--distribute none or mirrored); spread "
            "trials over processes with the KERASTUNER_* variables instead (see the module help)"
        )
    output_dir = Path(output_dir)
    worker = tuner_lib.is_worker()
    settings = {
        **config_lib.comparable_settings(config),
        "tuning": {
            "tuner": tuner,
            "tune_learning_rate": bool(tune_learning_rate),
            "project_name": project_name,
            "searched": list(names),
        },
    }
    if LABEL_DELAY in names:
        settings["tuning"]["label_delay_choices"] = list(delay_choices)
    if not worker:
        _check_output_dir(output_dir, settings, overwrite)
        if overwrite:  # KerasTuner removes its project; the rest of the search goes too
            for name in ("tensorboard", "backups"):
                shutil.rmtree(output_dir / name, ignore_errors=True)
            for name in ("best_hparams.json", "config.json"):
                (output_dir / name).unlink(missing_ok=True)

    from pipelines.runs import prepare

    prepare.check_inputs(config)
    strategy = training_setup.setup_devices(training.distribute)
    policy = training_setup.setup_precision(training.mixed_precision)

    import keras
    import keras_tuner

    from pipelines.training.callbacks import AveragedValidation, NanGuard

    keras.utils.set_random_seed(int(training.seed))
    artifact_dir = prepare.prepare_artifacts(config, progress=progress)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not worker:
        write_json_atomic(
            output_dir / "config.json", {**settings, "runtime": {"artifact_dir": str(artifact_dir), "policy": policy}}
        )

    inputs = training_setup.make_training_inputs(config, artifact_dir)
    objective_name = training_setup.monitor_name(config.task)
    objective = keras_tuner.Objective(objective_name, direction="max")
    search = tuner_lib.build_tuner(
        tuner,
        make_hypermodel(config, inputs, artifact_dir, names, delay_choices),
        objective,
        max_trials=int(max_trials),
        epochs=int(training.epochs),
        seed=int(training.seed),
        # A worker must never delete the chief's project.
        directory=output_dir,
        project_name=project_name,
        overwrite=overwrite and not worker,
        backup_dir=output_dir / "backups",
        strategy=strategy if training.distribute != "none" else None,
    )
    if not worker:
        write_hparams_experiment(output_dir / "tensorboard", names, objective_name, delay_choices)
    callbacks = [
        NanGuard(),
        AveragedValidation(),  # training.ema_momentum: trials are scored as the trainer scores runs
        # KerasTuner gives every trial its own log folder and adds the HParams summary there.
        keras.callbacks.TensorBoard(str(output_dir / "tensorboard"), histogram_freq=0, write_graph=False),
        pause_callback("tune.epoch"),
    ]
    search.search(
        inputs.train_ds,
        validation_data=inputs.val_ds,
        epochs=int(training.epochs),
        steps_per_epoch=inputs.steps_per_epoch if training.oversample else None,
        callbacks=callbacks,
        verbose=1 if progress else 2,
    )
    if worker:
        print(f"tuner {os.environ['KERASTUNER_TUNER_ID']}: no trials left; the chief writes the results")
        return {"best": None, "trials": []}

    rows = trial_rows(search.oracle, names)
    best_trials = search.oracle.get_best_trials(1)
    if not best_trials or best_trials[0].score is None:
        raise ColdKerasError(
            f"no trial finished with a score; see the trial messages in {output_dir / project_name}/trial_*/trial.json"
        )
    best = best_trials[0]
    record = {
        "hyperparameters": {name: float(best.hyperparameters.values[name]) for name in names},
        "objective": objective_name,
        "score": float(best.score),
        "trial_id": best.trial_id,
    }
    write_json_atomic(output_dir / "best_hparams.json", record)
    print(f"\n{len(rows)} trials in {output_dir / project_name} ({tuner} search, objective {objective_name}):")
    print(format_trials(rows, names, objective_name))
    print(
        f"\nbest: trial {best.trial_id}, {objective_name} = {best.score:.4f}; written to "
        f"{output_dir / 'best_hparams.json'}\ntrain with it: python -m pipelines.train --dataset "
        f"{config.dataset} --hparams {output_dir / 'best_hparams.json'}"
    )
    return {"best": record, "trials": rows}
