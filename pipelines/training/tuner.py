"""The KerasTuner tuner of a search, and the roles of a distributed search's processes.

`build_tuner` makes a random, Bayesian or Hyperband tuner whose every trial keeps a
`BackupAndRestore` in `backups/<trial_id>`, so an interrupted trial resumes where it stopped.
A distributed search uses KerasTuner's chief/worker protocol: every process runs the same command
with `KERASTUNER_TUNER_ID` ("chief" for the process that runs the oracle, "tuner0", "tuner1", ...
for the workers), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` set.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.core.errors import ConfigError

TUNERS = ("random", "bayesian", "hyperband")


def is_worker() -> bool:
    """True on a distributed search's worker process (the oracle's address is set, the id is not "chief")."""
    return "KERASTUNER_ORACLE_IP" in os.environ and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")


def check_distributed_env() -> None:
    """Raises ConfigError when `KERASTUNER_ORACLE_IP` is set without the port or the tuner id."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return
    missing = [name for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} is not: distributed "
            "search needs all three (KERASTUNER_TUNER_ID=chief on the oracle's process)"
        )


def build_tuner(
    kind, hypermodel, objective, *, max_trials, epochs, seed, directory, project_name, overwrite, backup_dir, strategy
):
    """The KerasTuner tuner of a search (`kind`: one of `TUNERS`), each trial with its own backup.

    Args:
        kind: str. "random", "bayesian" or "hyperband" (`max_trials` then caps Hyperband's own budget).
        hypermodel: keras_tuner.HyperModel (`pipelines.training.search_space.make_hypermodel`).
        objective: keras_tuner.Objective.
        max_trials: int. Total trials of the search.
        epochs: int. Epochs of a trial (Hyperband's `max_epochs`).
        seed: int. The oracle's seed.
        directory: the search directory; `project_name` is KerasTuner's project inside it.
        project_name: str.
        overwrite: bool. Discard the project (never on a worker).
        backup_dir: folder of the per-trial backups, `<backup_dir>/<trial_id>`.
        strategy: optional tf.distribute strategy of each trial.
    """
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
