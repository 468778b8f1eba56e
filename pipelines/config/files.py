"""Configuration: one YAML file per dataset in `configs/`, overridden by flags and tuned hparams.

The resolved configuration is a `pipelines.config.settings.RunConfig` (frozen dataclasses, read by
attribute); `pipelines.train` writes its `to_dict()` to the run directory as `config.json` so every
result can be traced to its settings. Merging files, hparams and flags works on plain mappings,
before they are parsed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from cold_keras.names import TASKS, WEIGHT_CONVENTIONS  # noqa: F401 - part of this module's interface
from pipelines.config import settings
from pipelines.config.settings import DATASETS, DISTRIBUTE, MIXED_PRECISION, MODES, RAW_DATASETS, RAW_WEIGHT_KEYS  # noqa: F401 - part of this module's interface
from pipelines.core.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# Keys a tuned-hyperparameters file may set, and where each one lives in the config.
HPARAM_SECTIONS = {
    "lambda_co_visual": "model",
    "lambda_co_audio": "model",
    "lambda_co_cross": "model",
    "lambda_regu": "model",
    "lambda_weight": "model",
    "learning_rate": "training",
    "label_delay_seconds": "training",
}


def mixed_precision_choice(value: str) -> str:
    """Accepts Keras's policy names too: `mixed_bfloat16` -> `bfloat16`, `float32` -> `off`."""
    value = value.strip()
    return {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16", "float32": "off"}.get(value, value)


def cache_dir() -> Path:
    """Where generated corpora and data artefacts are cached: $COLD_KERAS_CACHE or ~/.cache/cold_keras."""
    root = os.environ.get("COLD_KERAS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "cold_keras"


def _coerce_numbers(node):
    # YAML 1.1 reads `1e-3` (no dot) as a string; accept it as the number a user meant.
    if isinstance(node, dict):
        return {key: _coerce_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_coerce_numbers(value) for value in node]
    if isinstance(node, str):
        try:
            return float(node) if any(c in node for c in ".eE") and not node.isalpha() else node
        except ValueError:
            return node
    return node


def load_file(path) -> dict:
    """Reads a YAML (or JSON) config file into a dict; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"not valid YAML: {problem}", path, line, column) from None
    if data is None:  # an empty file (or only comments): no overrides
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must hold a mapping of keys to values", path)
    return _coerce_numbers(data)


def default_config_path(dataset: str) -> Path:
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return CONFIG_DIR / f"{dataset}.yaml"


def raw_config_path(dataset: str):
    """`configs/<dataset>_raw.yaml`, merged over the dataset's file in raw mode; None if there is none."""
    path = CONFIG_DIR / f"{dataset}_raw.yaml"
    return path if path.is_file() else None


def mode_of(config: settings.RunConfig) -> str:
    """`features` (per-frame feature vectors, the default) or `raw` (face crops and waveforms)."""
    return config.mode or "features"


def load_hparams(path) -> dict:
    """Reads a tuned-hyperparameters JSON file (written by `pipelines.tune`) as config overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("hyperparameters file not found", path)
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"not valid JSON: {error.msg}", path, error.lineno, error.colno) from None
    if isinstance(values, dict) and "hyperparameters" in values:
        values = values["hyperparameters"]
    if not isinstance(values, dict):
        raise ConfigError("expected a JSON object of hyperparameter names to values", path)
    overrides: dict = {}
    for name, value in values.items():
        section = HPARAM_SECTIONS.get(name)
        if section is None:
            raise ConfigError(f"unknown hyperparameter {name!r}; known: {', '.join(sorted(HPARAM_SECTIONS))}", path)
        overrides.setdefault(section, {})[name] = float(value)
    return overrides


def validate(config: dict, source="config") -> settings.RunConfig:
    """The resolved configuration of a merged one (`pipelines.settings`): every key known, of the right
    kind and in range, defaults filled in; raises ConfigError naming the file and the bad key."""
    return settings.resolve(config, source)


def check_known_keys(config: dict, source="config") -> None:
    """Every key of `config` must be a known one, holding a value of the right kind (values are not
    range-checked: `config` may be one file's overrides).

    Raises:
        ConfigError: `<file>:<line>:<column>: training.weigth_decay: unknown key (did you mean
            weight_decay?)`, or `...: training.epochs: expected an integer, got 'ten'`.
    """
    settings.RunConfig.parse(config, source, check_values=False)


def comparable_settings(config, source="config") -> dict:
    """The settings of a run that decide whether a run directory can be resumed or compared: the
    whole config without its `runtime` section, resolved (so that a `config.json` written before a
    key existed compares equal to today's config with that key at its default), as it reads back
    from JSON. `config`: a RunConfig or a mapping (a `config.json`). Raises ConfigError naming `source`
    for an unknown key or a value of the wrong kind."""
    if isinstance(config, settings.RunConfig):
        config = config.to_dict()
    config = {k: v for k, v in config.items() if k != "runtime"}
    return json.loads(json.dumps(settings.resolve_saved(config, source).to_dict()))


def first_difference(old: dict, new: dict, prefix="") -> str:
    """The first differing key of two nested settings dicts, as "section.key: old -> new" ("" if equal).

    >>> first_difference({"training": {"epochs": 6}}, {"training": {"epochs": 8}})
    'training.epochs: 6 -> 8'
    """
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} -> {b!r}"
    return ""


def model_hyperparameters(config: settings.RunConfig) -> dict:
    """The keyword arguments `cold_keras.models.build_model` takes, from the `model` section."""
    hp = config.model.to_dict()
    hp.pop("name")
    return hp
