"""Configuration: one YAML file per dataset in `configs/`, overridden by flags and tuned hparams.

The resolved configuration is a plain nested dict; `pipelines.train` writes it to the run
directory as `config.json` so every result can be traced to its settings.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

from cold_keras.names import TASKS, WEIGHT_CONVENTIONS
from pipelines import features
from pipelines.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DATASETS = ("avec", "iemocap", "synthetic")
MODES = ("features", "raw")
# Datasets whose adapter can give raw inputs (face crops and waveforms).
RAW_DATASETS = ("synthetic",)
RAW_WEIGHT_KEYS = ("visual_backbone_weights", "audio_backbone_weights")
MIXED_PRECISION = ("auto", "off", "float16", "bfloat16")
DISTRIBUTE = ("none", "mirrored", "multiworker")

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


def mode_of(config: dict) -> str:
    """`features` (per-frame feature vectors, the default) or `raw` (face crops and waveforms)."""
    return config.get("mode") or "features"


def deep_update(base: dict, update: dict) -> dict:
    """Returns a copy of `base` with `update` merged in, recursively for nested dicts."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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


def validate(config: dict, source="config") -> dict:
    """Checks the values a run depends on; raises ConfigError naming the bad key."""

    def need(condition, message):
        if not condition:
            raise ConfigError(message, source)

    check_known_keys(config, source)

    need(config.get("dataset") in DATASETS, f"dataset must be one of {', '.join(DATASETS)}")
    need(config.get("task") in TASKS, f"task must be one of {', '.join(TASKS)}")
    model = config.get("model", {})
    need(
        model.get("name") in features.MODEL_NAMES,
        f"model.name {model.get('name')!r} is not one of {', '.join(features.MODEL_NAMES)}",
    )
    need(
        model.get("weight_convention", "informativeness") in WEIGHT_CONVENTIONS,
        f"model.weight_convention must be one of {', '.join(WEIGHT_CONVENTIONS)}",
    )
    for key in (
        "lambda_co_visual",
        "lambda_co_audio",
        "lambda_co_cross",
        "lambda_regu",
        "lambda_weight",
        "lambda_reliability",
    ):
        value = model.get(key, 0.0)
        need(
            isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
            f"model.{key} must be a number >= 0, got {value!r}",
        )
    temperature = model.get("calibration_temperature", 1.0)
    need(
        isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature > 0,
        f"model.calibration_temperature must be a number > 0, got {temperature!r}",
    )
    for key in ("reliability_novelty", "reliability_agreement", "fusion_guard"):
        need(isinstance(model.get(key, False), bool), f"model.{key} must be true or false, got {model.get(key)!r}")
    need(
        isinstance(model.get("calibration_standardize", False), bool),
        f"model.calibration_standardize must be true or false, got {model.get('calibration_standardize')!r}",
    )
    training = config.get("training", {})
    for key in ("epochs", "batch_size"):
        value = training.get(key)
        need(isinstance(value, int) and value > 0, f"training.{key} must be a positive integer, got {value!r}")
    for key in ("learning_rate", "window_seconds"):
        value = training.get(key)
        need(isinstance(value, (int, float)) and value > 0, f"training.{key} must be > 0, got {value!r}")
    delay = training.get("label_delay_seconds", 0.0)
    need(
        isinstance(delay, (int, float)) and not isinstance(delay, bool) and 0 <= delay < float("inf"),
        f"training.label_delay_seconds must be a number of seconds >= 0, got {delay!r}",
    )
    clipnorm = training.get("clipnorm")
    need(
        clipnorm is None or (isinstance(clipnorm, (int, float)) and not isinstance(clipnorm, bool) and clipnorm >= 0),
        f"training.clipnorm must be a number >= 0 (0 or null: no clipping), got {clipnorm!r}",
    )
    need(
        training.get("mixed_precision") in MIXED_PRECISION,
        f"training.mixed_precision must be one of {', '.join(MIXED_PRECISION)}",
    )
    need(training.get("distribute") in DISTRIBUTE, f"training.distribute must be one of {', '.join(DISTRIBUTE)}")
    need(
        training.get("validation_partition") in features.PARTITIONS,
        f"training.validation_partition must be one of {', '.join(features.PARTITIONS)}",
    )
    mode = mode_of(config)
    need(mode in MODES, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "raw":
        need(
            config["dataset"] in RAW_DATASETS,
            f"mode raw needs a corpus of face crops and waveforms; of the built-in adapters only "
            f"{', '.join(RAW_DATASETS)} provides one (not {config['dataset']})",
        )
        raw = config.get("raw") or {}
        need(isinstance(raw, dict), "raw must be a mapping")
        for key in ("logmel", "visual_backbone", "audio_backbone", "augment"):
            need(
                raw.get(key) is None or isinstance(raw.get(key), dict),
                f"raw.{key} must be a mapping or null, got {raw.get(key)!r}",
            )
        for key in RAW_WEIGHT_KEYS:
            path = raw.get(key)
            if path is not None and not Path(path).expanduser().is_file():
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{key.split('_')[0]} backbone weight file does not exist (raw.{key} / {flag})", path)
    return config


def comparable_settings(config: dict) -> dict:
    """The settings of a run that decide whether a run directory can be resumed or compared: the
    whole config without its `runtime` section, as it reads back from JSON."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k != "runtime"}))


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


def model_hyperparameters(config: dict) -> dict:
    """The keyword arguments `cold_keras.models.build_model` takes, from the `model` section."""
    hp = dict(config["model"])
    hp.pop("name")
    return hp


# ---------------------------------------------------------------------------------------------
# Known keys: those of the shipped configs, plus the documented optional ones.

# Top-level keys no shipped config sets: `strict` (false = --lenient) and `runtime` (what the trainer
# records in config.json, e.g. the artefact folder).
OPTIONAL_KEYS = {
    ("strict",): ("bool",),
    ("runtime",): None,
    # Sections and keys with a default in the code that the shipped configs leave out (or leave null).
    ("training", "augment"): ("mapping",),
    ("training", "label_delay_seconds"): ("float",),
    ("training", "backup_every_steps"): ("int", "str"),
    ("training", "backup_every_seconds"): ("float",),
}
_KIND_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list",
    "mapping": "a mapping",
}
_schema_cache = {}


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "str"


def _shipped_schema() -> dict:
    """{key path: set of value kinds} over every shipped config file (plus `OPTIONAL_KEYS`)."""
    if "schema" not in _schema_cache:
        schema = {}

        def collect(node, prefix):
            for key, value in node.items():
                path = prefix + (str(key),)
                schema.setdefault(path, set()).add(_kind(value))
                if isinstance(value, dict):
                    collect(value, path)

        for path in sorted(CONFIG_DIR.glob("*.yaml")):
            collect(load_file(path), ())
        for path, kinds in OPTIONAL_KEYS.items():
            schema.setdefault(path, set()).update(kinds or ("any",))
        _schema_cache["schema"] = schema
    return _schema_cache["schema"]


_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _source_keys(relative: str, name: str) -> set:
    """The keys of the dict (or the strings of the tuple) assigned to `name` in a source file, or the
    parameters of the `__init__` of class `name`, read without importing the module (and TensorFlow)."""
    import ast

    tree = ast.parse((_SOURCE_ROOT / relative).read_text())
    assigned = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned[node.targets[0].id] = node.value
        if isinstance(node, ast.ClassDef) and node.name == name:
            init = next(item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__")
            return {arg.arg for arg in init.args.args[1:] + init.args.kwonlyargs}

    def keys(value):
        if isinstance(value, ast.Dict):
            return {key.value for key in value.keys}
        if isinstance(value, (ast.Tuple, ast.List)):
            return {item.value for item in value.elts}
        if isinstance(value, ast.Call) and value.args and isinstance(value.args[0], ast.Name):  # tuple(OTHER)
            return keys(assigned[value.args[0].id])
        raise ValueError(f"cannot read the keys of {name} in {relative}")

    return keys(assigned[name])


def _open_section_keys(path: tuple):
    """Keys a section accepts beyond the shipped configs' (read from the code that takes them).

    Returns a set of keys, or None when the section takes any key.
    """
    if path == ("runtime",):
        return None
    sources = {
        ("model",): ("cold_keras/models/builders.py", "DEFAULT_HYPERPARAMETERS"),
        ("synthetic",): ("pipelines/datasets/synthetic.py", "generate"),
        ("training", "augment"): ("pipelines/augment.py", "KEYS"),
        ("raw", "augment"): ("pipelines/raw_augment.py", "KEYS"),
        ("raw", "logmel"): ("pipelines/raw_inputs.py", "DEFAULT_LOGMEL"),
        ("raw", "visual_backbone"): ("cold_keras/backbones/face_cnn.py", "FaceCNN"),
        ("raw", "audio_backbone"): ("cold_keras/backbones/vggish.py", "VGGish"),
    }
    if path not in sources:
        return set()
    if path == ("synthetic",):
        import inspect

        from pipelines.datasets import synthetic

        return set(inspect.signature(synthetic.generate).parameters) - {"output_dir", "progress"}
    return _source_keys(*sources[path]) | ({"name"} if path == ("model",) else set())


def _key_position(source, path: tuple):
    """(line, column) of the key `path` in the YAML file `source`, or (None, None)."""
    try:
        node = yaml.compose(Path(source).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None, None
    position = (None, None)
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return position
        for key_node, value_node in node.value:
            if str(key_node.value) == key:
                position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                node = value_node
                break
        else:
            return None, None
    return position


def check_known_keys(config: dict, source="config") -> None:
    """Every key of `config` must be a known one, holding a value of the kind the shipped configs give it.

    Raises:
        ConfigError: `<file>:<line>:<column>: training.weigth_decay: unknown key (did you mean
            weight_decay?)`, or `...: training.epochs: expected an integer, got 'ten'`.
    """
    import difflib

    schema = _shipped_schema()

    def fail(path, message):
        line, column = _key_position(source, path) if Path(str(source)).is_file() else (None, None)
        raise ConfigError(f"{'.'.join(path)}: {message}", source, line, column)

    def walk(node, prefix):
        extra = None
        for key, value in node.items():
            path = prefix + (str(key),)
            kinds = schema.get(path)
            if kinds is None:
                if extra is None:
                    extra = _open_section_keys(prefix)
                if extra is None or str(key) in extra:
                    continue
                known = sorted({p[-1] for p in schema if p[:-1] == prefix and len(p) == len(path)} | extra)
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
                fail(path, f"unknown key ({hint})")
            kind = _kind(value)
            allowed = kinds - {"null"}
            if "float" in allowed:
                allowed = allowed | {"int"}
            if kind != "null" and allowed and "any" not in allowed and kind not in allowed:
                expected = " or ".join(_KIND_NAMES[k] for k in sorted(kinds - {"null"}))
                fail(path, f"expected {expected}, got {value!r}")
            if kind == "mapping" and "mapping" in kinds:
                walk(value, path)

    if not isinstance(config, dict):
        raise ConfigError("a configuration must be a mapping of keys to values", source)
    walk(config, ())
