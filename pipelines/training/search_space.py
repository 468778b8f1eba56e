"""What a search varies, and the hypermodel that builds each trial's model with it.

The searched groups (`--search`): `lambdas`, COLD fusion's four loss weights (paper Eq. 8:
lambda_co_visual, lambda_co_audio, lambda_co_cross, lambda_regu; each log-uniform in [1e-5, 1e5], the
paper's range), `learning_rate` (log-uniform in [1e-4, 1e-2]) and `label_delay` (the annotation delay
`training.label_delay_seconds`, one of `--label-delay-choices`; each trial then trains and validates
on its own pairing of features and labels, see `pipelines.data.label_delay`). `make_hypermodel`
declares them to KerasTuner and builds each trial's model with the trainer's own
`pipelines.training.setup.build_compiled_model`.
"""

from __future__ import annotations

from pipelines.config import files as config_lib
from pipelines.config.settings import RunConfig, as_run_config
from pipelines.core.errors import ConfigError
from pipelines.training import setup as training_setup

LAMBDA_NAMES = ("lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu")
LAMBDA_RANGE = (1e-5, 1e5)
LEARNING_RATE_RANGE = (1e-4, 1e-2)
SEARCH_GROUPS = ("lambdas", "learning_rate", "label_delay")
LABEL_DELAY = "label_delay_seconds"
DEFAULT_LABEL_DELAY_CHOICES = (0.0, 1.0, 2.0, 3.0, 4.0)


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


def searched_names(config, tune_learning_rate: bool, search=None) -> tuple:
    """The hyperparameters a search over this config varies.

    Only COLD fusion has the calibration and prior terms, so for the other models only the
    learning rate (and the label delay) can be searched. Without `search` the groups are the
    lambdas (COLD fusion) plus the learning rate with `tune_learning_rate`. `config`: a RunConfig, or a
    mapping parsed into one.
    """
    model = as_run_config(config).model.name
    if search is None:
        names = LAMBDA_NAMES if model == "cold_fusion" else ()
    else:
        if "lambdas" in search and model != "cold_fusion":
            raise ConfigError(f"--search lambdas: --model {model} has no loss weights to tune (only cold_fusion has)")
        names = LAMBDA_NAMES if "lambdas" in search else ()
        if "label_delay" in search:
            names = names + (LABEL_DELAY,)
    if tune_learning_rate or (search is not None and "learning_rate" in search):
        names = names + ("learning_rate",)
    if not names:
        raise ConfigError(
            f"--model {model} has no loss weights to tune (only cold_fusion "
            "has); pass --tune-learning-rate to search its learning rate"
        )
    return names


def trial_config(config: RunConfig, values: dict) -> RunConfig:
    """A new config with tuned values in place (the same mapping `--hparams` uses)."""
    update: dict = {}
    for name, value in values.items():
        section = config_lib.HPARAM_SECTIONS.get(name)
        if section is not None:
            update.setdefault(section, {})[name] = float(value)
    return config.updated(update)


def make_hypermodel(config, inputs, artifact_dir, names, delay_choices=DEFAULT_LABEL_DELAY_CHOICES):
    """The KerasTuner hypermodel of a search over `names` (`searched_names`).

    Each trial's model is the trainer's (`pipelines.training.setup.build_compiled_model`) with the
    trial's values in the config (`trial_config`); with `label_delay` searched, a trial trains and
    validates on datasets paired at its own delay. A trial whose NaN guard stopped it fails.

    Args:
        config: RunConfig. The resolved configuration.
        inputs: `pipelines.training.setup.TrainingInputs` of the config.
        artifact_dir: the data artefacts.
        names: tuple of the searched names.
        delay_choices: the delays in seconds a `label_delay` search picks from.
    """
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
                    current = float(getattr(config.training, LABEL_DELAY) or 0.0)
                    values[name] = hp.Choice(
                        name, list(delay_choices), default=current if current in delay_choices else delay_choices[0]
                    )
                    continue
                low, high = LEARNING_RATE_RANGE if name == "learning_rate" else LAMBDA_RANGE
                section = config_lib.HPARAM_SECTIONS[name]
                default = min(max(float(getattr(getattr(config, section), name, low) or low), low), high)
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
