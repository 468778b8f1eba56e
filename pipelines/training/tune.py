"""Tuner: `python -m pipelines.tune --dataset {avec,iemocap,synthetic} --tuner random --max-trials 20`.

Searches COLD fusion's four loss weights (paper Eq. 8: lambda_co_visual, lambda_co_audio,
lambda_co_cross, lambda_regu; each log-uniform in [1e-5, 1e5], the paper's range) and optionally
the learning rate (log-uniform in [1e-4, 1e-2]) with KerasTuner. `--search` picks the groups:
`lambdas`, `learning_rate` and `label_delay` (the annotation delay `training.label_delay_seconds`,
one of `--label-delay-choices`; each trial then trains and validates on its own pairing of features
and labels, see `pipelines.data.label_delay`), e.g. `--search lambdas,label_delay`. Every trial builds its model with
`pipelines.training.setup.build_compiled_model`, the trainer's own model-building function, and trains on
the trainer's datasets; the objective is the trainer's monitored metric (`val_ccc_mean`, or
`val_f1_macro` for classification). KerasTuner clears the Keras session before it builds each
trial's model, and each trial gets NaN guarding and a TensorBoard log. The output directory holds:

    config.json  best_hparams.json  search/ (KerasTuner project)  backups/<trial_id>/
    tensorboard/<trial_id>/execution0/ (scalars + the HParams dashboard)

`best_hparams.json` is what `python -m pipelines.train --hparams FILE` takes. Running the same
command again resumes the search: finished trials are kept, an interrupted trial restarts from its
last finished epoch, and a larger `--max-trials` adds only the missing trials.

Distributed search uses KerasTuner's chief/worker protocol: start the same command on every
process with `KERASTUNER_TUNER_ID` ("chief" for the process that runs the oracle, "tuner0",
"tuner1", ... for the workers), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` set.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import flags as run_options
from pipelines.core import cli
from pipelines.core.errors import ColdKerasError, ConfigError, cli_main
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.core.pause import pause_callback
from pipelines.training import setup as training_setup

LAMBDA_NAMES = ("lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu")
LAMBDA_RANGE = (1e-5, 1e5)
LEARNING_RATE_RANGE = (1e-4, 1e-2)
TUNERS = ("random", "bayesian", "hyperband")
SEARCH_GROUPS = ("lambdas", "learning_rate", "label_delay")
LABEL_DELAY = "label_delay_seconds"
DEFAULT_LABEL_DELAY_CHOICES = (0.0, 1.0, 2.0, 3.0, 4.0)
DEFAULT_PROJECT = "search"


def default_output_dir(config) -> Path:
    """`tuning/<dataset>_<model>_<task>` (`tuning/<dataset>_raw_...` in raw mode): the same command
    always resumes the same search."""
    return Path("tuning") / run_options.default_output_dir(config).name


def parse_search(value) -> tuple:
    """`--search lambdas,label_delay` -> ("lambdas", "label_delay"); None stays None."""
    if value is None:
        return None
    groups = tuple(dict.fromkeys(part.strip() for part in str(value).split(",") if part.strip()))
    unknown = [group for group in groups if group not in SEARCH_GROUPS]
    if unknown or not groups:
        raise ConfigError(f"--search takes a comma-separated list of {', '.join(SEARCH_GROUPS)}, got {value!r}")
    return groups


def parse_delay_choices(value) -> tuple:
    """`--label-delay-choices 0,2,4` -> (0.0, 2.0, 4.0): distinct delays in seconds, each >= 0."""
    from pipelines.data import label_delay

    if value is None:
        return DEFAULT_LABEL_DELAY_CHOICES
    try:
        choices = [float(part) for part in str(value).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--label-delay-choices takes comma-separated seconds, got {value!r}") from None
    choices = tuple(sorted(set(label_delay.check(c, "--label-delay-choices") for c in choices)))
    if not choices:
        raise ConfigError(f"--label-delay-choices takes comma-separated seconds, got {value!r}")
    return choices


def searched_names(config: dict, tune_learning_rate: bool, search=None) -> tuple:
    """The hyperparameters a search over this config varies.

    Only COLD fusion has the calibration and prior terms, so for the other models only the
    learning rate (and the label delay) can be searched. Without `search` the groups are the
    lambdas (COLD fusion) plus the learning rate with `tune_learning_rate`.
    """
    if search is None:
        names = LAMBDA_NAMES if config["model"]["name"] == "cold_fusion" else ()
    else:
        if "lambdas" in search and config["model"]["name"] != "cold_fusion":
            raise ConfigError(
                f"--search lambdas: --model {config['model']['name']} has no loss weights to tune "
                "(only cold_fusion has)"
            )
        names = LAMBDA_NAMES if "lambdas" in search else ()
        if "label_delay" in search:
            names = names + (LABEL_DELAY,)
    if tune_learning_rate or (search is not None and "learning_rate" in search):
        names = names + ("learning_rate",)
    if not names:
        raise ConfigError(
            f"--model {config['model']['name']} has no loss weights to tune (only cold_fusion "
            "has); pass --tune-learning-rate to search its learning rate"
        )
    return names


def trial_config(config: dict, values: dict) -> dict:
    """The config with tuned values in place (the same mapping `--hparams` uses)."""
    update: dict = {}
    for name, value in values.items():
        section = config_lib.HPARAM_SECTIONS.get(name)
        if section is not None:
            update.setdefault(section, {})[name] = float(value)
    return config_lib.deep_update(config, update)


def _is_worker() -> bool:
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def _check_distributed_env() -> None:
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return
    missing = [name for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} is not: distributed "
            "search needs all three (KERASTUNER_TUNER_ID=chief on the oracle's process)"
        )


def _build_tuner(
    kind, hypermodel, objective, *, max_trials, epochs, seed, directory, project_name, overwrite, backup_dir, strategy
):
    import keras
    import keras_tuner

    bases = {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
    }

    class Tuner(bases[kind]):
        """Adds a per-trial `BackupAndRestore`, so an interrupted trial resumes where it stopped.

        KerasTuner puts the trials that were running when a search stopped back into its retry
        queue under the same id, so `backups/<trial_id>` finds them again.
        """

        def run_trial(self, trial, *args, **kwargs):
            print(f"trial {trial.trial_id} on tuner {self.tuner_id}", flush=True)
            callbacks = list(kwargs.pop("callbacks", []))
            callbacks.append(keras.callbacks.BackupAndRestore(str(Path(backup_dir) / trial.trial_id)))
            return super().run_trial(trial, *args, callbacks=callbacks, **kwargs)

    common = dict(
        objective=objective,
        seed=seed,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        distribution_strategy=strategy,
        max_consecutive_failed_trials=3,
    )
    if kind == "hyperband":
        tuner = Tuner(hypermodel, max_epochs=epochs, factor=3, **common)
        tuner.oracle.max_trials = max_trials  # a cap on top of Hyperband's own budget
        return tuner
    return Tuner(hypermodel, max_trials=max_trials, **common)


def _make_hypermodel(config, inputs, artifact_dir, names, delay_choices=DEFAULT_LABEL_DELAY_CHOICES):
    import keras_tuner

    from pipelines.training.callbacks import NanGuard

    class ColdHyperModel(keras_tuner.HyperModel):
        """Declares the searched values and builds the trainer's model with them.

        Defaults are the config's values (the paper's lambdas), clipped into the search range.
        """

        def build(self, hp):
            values = {}
            for name in names:
                if name == LABEL_DELAY:
                    current = float(config["training"].get(LABEL_DELAY, 0.0) or 0.0)
                    values[name] = hp.Choice(
                        name, list(delay_choices), default=current if current in delay_choices else delay_choices[0]
                    )
                    continue
                low, high = LEARNING_RATE_RANGE if name == "learning_rate" else LAMBDA_RANGE
                section = config_lib.HPARAM_SECTIONS[name]
                default = min(max(float(config[section].get(name, low) or low), low), high)
                values[name] = hp.Float(name, low, high, sampling="log", default=default)
            return training_setup.build_compiled_model(
                trial_config(config, values), inputs.manifest, artifact_dir, inputs.steps_per_epoch
            )

        def fit(self, hp, model, *args, **kwargs):
            if LABEL_DELAY in names:
                # Each delay pairs features and labels differently: the trial's own datasets.
                trial = training_setup.make_training_inputs(
                    trial_config(config, {LABEL_DELAY: hp.get(LABEL_DELAY)}), artifact_dir
                )
                args = (trial.train_ds,) + tuple(args[1:])
                kwargs["validation_data"] = trial.val_ds
            history = model.fit(*args, **kwargs)
            for callback in kwargs.get("callbacks", []):
                if isinstance(callback, NanGuard) and callback.failed:
                    raise keras_tuner.errors.FailedTrialError(callback.failed)
            return history

    return ColdHyperModel()


def write_hparams_experiment(log_dir, names, objective_name, delay_choices=DEFAULT_LABEL_DELAY_CHOICES) -> None:
    """Declares the searched ranges and the metrics for TensorBoard's HParams dashboard.

    KerasTuner writes each trial's values (a session) into `<log_dir>/<trial_id>/execution0`;
    this experiment summary at the top tells the dashboard the domains and which scalars of the
    sessions' `validation` runs to show as metric columns. Written once per search.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    log_dir = Path(log_dir)
    if any(log_dir.glob("events.out.tfevents*")):
        return
    metric = objective_name.removeprefix("val_")
    hparams = [
        hparams_api.HParam(
            name,
            hparams_api.Discrete(list(delay_choices))
            if name == LABEL_DELAY
            else hparams_api.RealInterval(*(LEARNING_RATE_RANGE if name == "learning_rate" else LAMBDA_RANGE)),
        )
        for name in names
    ]
    metrics = [
        hparams_api.Metric(f"epoch_{metric}", group="validation", display_name=objective_name),
        hparams_api.Metric("epoch_loss", group="validation", display_name="val_loss"),
    ]
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hparams_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()


def trial_rows(oracle, names, direction="max") -> list:
    """One dict per trial (id, searched values, score, status), best first, unscored last."""
    rows = []
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append(
            {
                "trial_id": trial.trial_id,
                **{name: values.get(name) for name in names},
                "score": trial.score,
                "status": str(trial.status),
            }
        )
    sign = -1.0 if direction == "max" else 1.0
    scored = lambda row: row["score"] is not None and math.isfinite(row["score"])  # noqa: E731
    return sorted(
        rows, key=lambda row: (0, sign * row["score"], row["trial_id"]) if scored(row) else (1, 0.0, row["trial_id"])
    )


def format_trials(rows, names, objective) -> str:
    """A plain-text table of `trial_rows`."""
    header = ["trial"] + list(names) + [objective, "status"]
    lines = [
        [row["trial_id"]]
        + [f"{row[n]:.3g}" if row[n] is not None else "-" for n in names]
        + [f"{row['score']:.4f}" if row["score"] is not None else "-", row["status"]]
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    text = [" ".join(str(cell).rjust(width) for cell, width in zip(line, widths)) for line in [header] + lines]
    return "\n".join(text)


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
    config: dict,
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

    `search`: optional groups (`parse_search`); `label_delay_choices`: the delays in seconds
    (default 0, 1, 2, 3, 4) a `label_delay` search picks from.

    On a distributed worker the trials it ran are reported to the chief, which writes
    `best_hparams.json`; the worker returns {"best": None, "trials": []}.
    """
    if tuner not in TUNERS:
        raise ConfigError(f"unknown tuner {tuner!r}; choose one of {', '.join(TUNERS)}")
    if tuner == "bayesian" and importlib.util.find_spec("sklearn") is None:
        raise ConfigError(
            "--tuner bayesian needs scikit-learn (KerasTuner's Gaussian process): "
            "pip install 'keras-tuner[bayesian]==1.4.8', or use --tuner random or hyperband"
        )
    if int(max_trials) < 1:
        raise ConfigError(f"--max-trials must be at least 1, got {max_trials}")
    _check_distributed_env()
    search = parse_search(search) if isinstance(search, str) else search
    names = searched_names(config, tune_learning_rate, search)
    delay_choices = parse_delay_choices(label_delay_choices)
    training = config["training"]
    if training["distribute"] == "multiworker":
        raise ConfigError(
            "the tuner runs each trial in one process (--distribute none or mirrored); spread "
            "trials over processes with the KERASTUNER_* variables instead (see the module help)"
        )
    output_dir = Path(output_dir)
    worker = _is_worker()
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
    strategy = training_setup.setup_devices(training["distribute"])
    policy = training_setup.setup_precision(training["mixed_precision"])

    import keras
    import keras_tuner

    from pipelines.training.callbacks import NanGuard

    keras.utils.set_random_seed(int(training["seed"]))
    artifact_dir = prepare.prepare_artifacts(config, progress=progress)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not worker:
        write_json_atomic(
            output_dir / "config.json", {**settings, "runtime": {"artifact_dir": str(artifact_dir), "policy": policy}}
        )

    inputs = training_setup.make_training_inputs(config, artifact_dir)
    objective_name = training_setup.monitor_name(config["task"])
    objective = keras_tuner.Objective(objective_name, direction="max")
    search = _build_tuner(
        tuner,
        _make_hypermodel(config, inputs, artifact_dir, names, delay_choices),
        objective,
        max_trials=int(max_trials),
        epochs=int(training["epochs"]),
        seed=int(training["seed"]),
        # A worker must never delete the chief's project.
        directory=output_dir,
        project_name=project_name,
        overwrite=overwrite and not worker,
        backup_dir=output_dir / "backups",
        strategy=strategy if training["distribute"] != "none" else None,
    )
    if not worker:
        write_hparams_experiment(output_dir / "tensorboard", names, objective_name, delay_choices)
    callbacks = [
        NanGuard(),
        # KerasTuner gives every trial its own log folder and adds the HParams summary there.
        keras.callbacks.TensorBoard(str(output_dir / "tensorboard"), histogram_freq=0, write_graph=False),
        pause_callback("tune.epoch"),
    ]
    search.search(
        inputs.train_ds,
        validation_data=inputs.val_ds,
        epochs=int(training["epochs"]),
        steps_per_epoch=inputs.steps_per_epoch if training["oversample"] else None,
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
        f"{config['dataset']} --hparams {output_dir / 'best_hparams.json'}"
    )
    return {"best": record, "trials": rows}


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.tune",
        description="Search COLD fusion's loss weights (and optionally the learning rate) with KerasTuner. "
        "Example: python -m pipelines.tune --dataset synthetic --max-trials 20",
        formatter_class=cli.HelpFormatter,
    )
    run_options.add_common_arguments(parser)
    parser.add_argument("--tuner", choices=TUNERS, default="random", help="KerasTuner search algorithm")
    parser.add_argument(
        "--max-trials",
        type=int,
        default=10,
        help="total number of trials; rerunning with a larger value adds only the missing ones",
    )
    parser.add_argument(
        "--tune-learning-rate",
        action="store_true",
        help=f"also search the learning rate in {list(LEARNING_RATE_RANGE)} (log scale)",
    )
    parser.add_argument(
        "--search",
        metavar="GROUPS",
        help=f"comma-separated groups to search: {', '.join(SEARCH_GROUPS)} (default: lambdas for "
        "cold_fusion, plus learning_rate with --tune-learning-rate)",
    )
    parser.add_argument(
        "--label-delay-choices",
        metavar="S1,S2,...",
        help="annotation delays in seconds a label_delay search picks from (default 0,1,2,3,4)",
    )
    parser.add_argument(
        "--output-dir",
        help="search directory (default tuning/<dataset>_<model>_<task>); "
        "the same directory and project name resume a search",
    )
    parser.add_argument("--project-name", default=DEFAULT_PROJECT, help="KerasTuner project inside --output-dir")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing search in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    config = run_options.build_config(args)
    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(config)
    cli.check_output_dir(output_dir, "--output-dir" if args.output_dir else "the default search directory")
    run(
        config,
        output_dir,
        tuner=args.tuner,
        max_trials=args.max_trials,
        tune_learning_rate=args.tune_learning_rate,
        project_name=args.project_name,
        overwrite=args.overwrite,
        progress=not args.quiet,
        search=parse_search(args.search),
        label_delay_choices=args.label_delay_choices,
    )
