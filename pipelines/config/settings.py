"""A run's configuration, typed: every key, its kind, its default and its allowed values, in one place.

A configuration is read from `configs/<dataset>.yaml` (plus `configs/<dataset>_raw.yaml` in raw mode),
then a `--config` file, then `--hparams`, then the flags (`pipelines.config.flags.build_config`); the
files and flags only override the defaults declared here. `RunConfig.parse` turns the merged mapping
into frozen dataclasses and rejects, in one line naming the file (with line and column when the key is
in it) and the key:

- an unknown key, with the nearest known one: `training.weigth_decay: unknown key (did you mean
  weight_decay?)`;
- a value of the wrong kind: `training.epochs: expected an integer, got 'ten'`;
- a value out of range: `training.clipnorm must be a number >= 0 (0 or null: no clipping), got -1`.

The components take the `RunConfig` itself and read it by attribute (`config.training.epochs`); a
change makes a new one (`RunConfig.updated`). `RunConfig.to_dict()` is what the trainer writes to
`config.json`: every key present (defaults filled in), except optional keys left unset. A
`config.json` written before a key existed still loads: the key takes its default.

The `model` section is derived from `cold_keras.hyperparameters.DEFAULT_HYPERPARAMETERS`, the one home
of the model's defaults. Sections whose keys belong to a constructor elsewhere (`synthetic`: the
generator; `raw.logmel` / `raw.visual_backbone` / `raw.audio_backbone`: the log-mel settings and the
backbones; `training.augment` / `raw.augment`: `pipelines.config.augmentation`) are mappings whose keys are
checked against that code and whose defaults stay there.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
from pathlib import Path
from typing import Callable, Optional

import yaml

from cold_keras.hyperparameters import DEFAULT_HYPERPARAMETERS
from cold_keras.names import MODEL_NAMES, TASKS, WEIGHT_CONVENTIONS
from pipelines.config import augmentation as augment_options
from pipelines.config.merging import deep_update
from pipelines.core.errors import ConfigError
from pipelines.data import features

DATASETS = ("avec", "iemocap", "synthetic", "recordings")
MODES = ("features", "raw")
# Datasets whose adapter can give raw inputs (face crops and waveforms).
RAW_DATASETS = ("synthetic", "recordings")
# Datasets that are raw only (own recordings as `pipelines.extract` writes them for raw mode).
RAW_ONLY_DATASETS = ("recordings",)
RAW_WEIGHT_KEYS = ("visual_backbone_weights", "audio_backbone_weights")
MIXED_PRECISION = ("auto", "off", "float16", "bfloat16")
DISTRIBUTE = ("none", "mirrored", "multiworker")

_KIND_NAMES = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list",
    "mapping": "a mapping",
}
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- how a key is declared


@dataclasses.dataclass(frozen=True)
class Rule:
    """A constraint on a value: `check(value)` must hold, else "<key> <message>"."""

    check: Callable
    message: str


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low, text=None) -> Rule:
    return Rule(lambda v: _number(v) and v >= low, text or f"must be a number >= {low}, got {{value!r}}")


def above(low, text=None) -> Rule:
    return Rule(lambda v: _number(v) and v > low, text or f"must be a number > {low}, got {{value!r}}")


POSITIVE_INT = Rule(
    lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "must be a positive integer, got {value!r}"
)
UNIT_INTERVAL = Rule(lambda v: _number(v) and 0 <= v < 1, "must be a number in [0, 1), got {value!r}")


def one_of(choices, text="must be one of {choices}") -> Rule:
    return Rule(lambda v: v in choices, text.replace("{choices}", ", ".join(choices)))


def setting(default, kind, rule: Optional[Rule] = None, *, keys=None, validate=None, nullable=False, help=""):
    """A key of a section.

    Args:
        default: the value when no file or flag sets the key (None: unset, left out of `to_dict`).
        kind: "bool", "int", "float" (an integer is accepted), "str", "list", "mapping", "any", a
            tuple of these, or a section class (a nested mapping parsed into that dataclass).
        rule: the allowed values, checked once the kinds are right.
        keys: for a "mapping": a function returning the keys it accepts (None: any key).
        validate: for a "mapping": a function (value, key path) checking its values.
        nullable: null is a value of the key (e.g. `clipnorm: null`, no clipping). Keys with a
            default of None are always nullable; for the others null is an error.
        help: what the key does (shown by `python -m pipelines.settings`).
    """
    metadata = {
        "kind": kind,
        "rule": rule,
        "keys": keys,
        "validate": validate,
        "nullable": nullable or default is None,
        "help": help,
    }
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _kind_of(value) -> str:
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
    if isinstance(value, (list, tuple)):
        return "list"
    return "str"


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


class _Parse:
    """One parse of a mapping: where it came from, and whether values are checked beyond their kinds."""

    def __init__(self, source, check_values: bool):
        self.source = source
        self.check_values = check_values

    def fail(self, path, message):
        is_file = self.source is not None and Path(str(self.source)).is_file()
        line, column = _key_position(self.source, path) if is_file else (None, None)
        raise ConfigError(f"{'.'.join(path)}: {message}", self.source, line, column)

    def unknown(self, path, known):
        close = difflib.get_close_matches(str(path[-1]), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
        self.fail(path, f"unknown key ({hint})")

    def value(self, path, value, meta):
        kind = meta["kind"]
        if isinstance(kind, type) and issubclass(kind, Section):
            if value is None:
                return None
            if not isinstance(value, dict):
                self.fail(path, f"expected a mapping, got {value!r}")
            return kind._parse(value, path, self)
        kinds = set(kind) if isinstance(kind, tuple) else {kind}
        got = _kind_of(value)
        allowed = kinds | ({"int"} if "float" in kinds else set())
        if got != "null" and "any" not in kinds and got not in allowed:
            self.fail(path, f"expected {' or '.join(_KIND_NAMES[k] for k in sorted(kinds))}, got {value!r}")
        if got == "mapping" and "mapping" in kinds and meta["keys"] is not None:
            known = meta["keys"]()
            if known is not None:
                for key in value:
                    if str(key) not in known:
                        self.unknown(path + (str(key),), known)
        if got == "list":
            value = list(value)
        if self.check_values:
            rule = meta["rule"]
            if value is None and not meta["nullable"]:
                if rule is None:
                    expected = " or ".join(_KIND_NAMES[k] for k in sorted(kinds))
                    raise ConfigError(f"{'.'.join(path)}: expected {expected}, got null", self.source)
                raise ConfigError(f"{'.'.join(path)} {rule.message.format(value=value)}", self.source)
            if rule is not None and value is not None and not rule.check(value):
                raise ConfigError(f"{'.'.join(path)} {rule.message.format(value=value)}", self.source)
            if meta["validate"] is not None and value is not None:
                meta["validate"](value, ".".join(path))
        return value


class Section:
    """Base of the typed sections: parsing from a mapping and writing back to one."""

    @classmethod
    def _parse(cls, mapping: dict, path: tuple, parse: _Parse):
        declared = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for key, value in mapping.items():
            key = str(key)
            if key not in declared:
                parse.unknown(path + (key,), declared)
            parsed = parse.value(path + (key,), value, declared[key].metadata)
            if parsed is None and isinstance(declared[key].metadata["kind"], type):
                continue  # `model: null` (a whole section unset): the section's defaults
            values[key] = parsed
        return cls(**values)

    def to_dict(self) -> dict:
        """The section as plain JSON-ready values; optional keys left unset (None by default) are left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and _default_of(f) is None:
                continue
            out[f.name] = value.to_dict() if isinstance(value, Section) else _plain(value)
        return out


def _default_of(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------- keys read from other code


def _init_parameters(relative: str, name: str) -> set:
    """The parameters of `name`'s `__init__` (a class) or of function `name`, or the keys of the dict
    assigned to `name`, in a source file, read without importing it (and TensorFlow)."""
    import ast

    tree = ast.parse((_SOURCE_ROOT / relative).read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            init = next(item for item in node.body if isinstance(item, ast.FunctionDef) and item.name == "__init__")
            return {arg.arg for arg in init.args.args[1:] + init.args.kwonlyargs}
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return {arg.arg for arg in node.args.args + node.args.kwonlyargs}
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {key.value for key in node.value.keys}
    raise ValueError(f"{name} not found in {relative}")


def _synthetic_keys():
    return _init_parameters("pipelines/datasets/synthetic.py", "generate") - {"output_dir", "progress"}


def _logmel_keys():
    return _init_parameters("pipelines/data/raw_inputs.py", "DEFAULT_LOGMEL")


def _face_cnn_keys():
    return _init_parameters("cold_keras/backbones/face_cnn.py", "FaceCNN")


def _vggish_keys():
    return _init_parameters("cold_keras/backbones/vggish.py", "VGGish")


# --------------------------------------------------------------------------- the sections


@dataclasses.dataclass(frozen=True)
class FeaturesConfig(Section):
    audio: list = setting([], "list", help="audio feature folders (AVEC) or the modality's folder name")
    visual: list = setting([], "list", help="visual feature folders (AVEC) or the modality's folder name")


def _model_rule(key):
    if key.startswith("lambda_"):
        return at_least(0)
    if key == "calibration_temperature":
        return above(0)
    if key == "weight_convention":
        return one_of(WEIGHT_CONVENTIONS)
    if key in ("gru_units", "gru_layers", "latent_dim", "num_heads", "num_transformer_layers", "transformer_dim"):
        return POSITIVE_INT
    if key in ("dropout", "transformer_dropout"):
        return UNIT_INTERVAL
    if key == "fallback_threshold":
        return Rule(lambda v: v == 0 or (_number(v) and 0.5 <= v < 1), "must be 0 (off) or in [0.5, 1), got {value!r}")
    return None


def _model_kind(default):
    return "any" if default is None else _kind_of(default)


# `model:` holds `build_model`'s hyperparameters: their defaults are the library's.
ModelConfig = dataclasses.make_dataclass(
    "ModelConfig",
    [
        ("name", str, setting("cold_fusion", "str", one_of(MODEL_NAMES, "{value!r} is not one of {choices}"))),
        *[
            (key, object, setting(default, _model_kind(default), _model_rule(key)))
            for key, default in DEFAULT_HYPERPARAMETERS.items()
        ],
    ],
    bases=(Section,),
    frozen=True,
    namespace={"__doc__": "The `model:` section: the model's name and `build_model`'s hyperparameters."},
)
# `make_dataclass` formats the rule's message with `{choices}` already filled in; `{value!r}` stays.


def _check_augment(value, source):
    augment_options.validate_config(value, source)


def _check_raw_augment(value, source):
    augment_options.validate_raw_config(value, source)


@dataclasses.dataclass(frozen=True)
class TrainingConfig(Section):
    """The `training:` section: optimisation, windows, augmentation, precision and devices."""

    epochs: int = setting(31, "int", POSITIVE_INT, help="1 + 2 + 4 + 8 + 16: ends on a restart boundary")
    batch_size: int = setting(4, "int", POSITIVE_INT)
    learning_rate: float = setting(5e-3, "float", Rule(lambda v: _number(v) and v > 0, "must be > 0, got {value!r}"))
    weight_decay: float = setting(1e-4, "float", at_least(0))
    clipnorm: Optional[float] = setting(
        1.0, "float", at_least(0, "must be a number >= 0 (0 or null: no clipping), got {value!r}"), nullable=True
    )
    restart_period_epochs: float = setting(1, "float", above(0), help="cosine decay with warm restarts: first period")
    restart_period_mul: float = setting(2.0, "float", above(0))
    window_seconds: float = setting(30.0, "float", Rule(lambda v: _number(v) and v > 0, "must be > 0, got {value!r}"))
    window_hop_seconds: Optional[float] = setting(15.0, "float", above(0), nullable=True)
    augment: Optional[dict] = setting(None, "mapping", keys=lambda: set(augment_options.KEYS), validate=_check_augment)
    oversample: bool = setting(False, "bool")
    mixed_precision: str = setting("auto", "str", one_of(MIXED_PRECISION))
    distribute: str = setting("none", "str", one_of(DISTRIBUTE))
    seed: int = setting(0, "int")
    validation_partition: str = setting("devel", "str", one_of(features.PARTITIONS))
    label_delay_seconds: float = setting(
        0.0,
        "float",
        Rule(lambda v: _number(v) and 0 <= v < math.inf, "must be a number of seconds >= 0, got {value!r}"),
    )
    ema_momentum: float = setting(0.0, "float", UNIT_INTERVAL, help="moving average of the weights, per step; 0: off")
    backup_every_steps: object = setting(
        "auto",
        ("int", "str"),
        Rule(
            lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
            "must be a positive integer or auto, got {value!r}",
        ),
        nullable=True,  # null: auto
    )
    backup_every_seconds: float = setting(60.0, "float", above(0))


@dataclasses.dataclass(frozen=True)
class RawConfig(Section):
    """The `raw:` section (raw mode): log-mel settings, the two backbones, their weights, augmentation."""

    logmel: Optional[dict] = setting(None, "mapping", keys=_logmel_keys)
    visual_backbone: Optional[dict] = setting(None, "mapping", keys=_face_cnn_keys)
    audio_backbone: Optional[dict] = setting(None, "mapping", keys=_vggish_keys)
    visual_backbone_weights: Optional[str] = setting(None, "str")
    audio_backbone_weights: Optional[str] = setting(None, "str")
    augment: Optional[dict] = setting(
        None, "mapping", keys=lambda: set(augment_options.RAW_KEYS), validate=_check_raw_augment
    )


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    """A whole run's configuration."""

    dataset: Optional[str] = setting(None, "str", one_of(DATASETS))
    data_dir: Optional[str] = setting(None, "str")
    features_dir: Optional[str] = setting(None, "str", help="IEMOCAP: folder of per-utterance feature files")
    validation_speaker: str = setting("F", "str", help="IEMOCAP: session 5 speaker used for validation")
    features: FeaturesConfig = setting(FeaturesConfig(), FeaturesConfig)
    allow_missing_modality: bool = setting(False, "bool")
    strict: Optional[bool] = setting(None, "bool", help="false: --lenient (AVEC, IEMOCAP)")
    task: str = setting("regression", "str", one_of(TASKS))
    mode: str = setting("features", "str", one_of(MODES, "must be one of {choices}, got {value!r}"), nullable=True)
    synthetic: Optional[dict] = setting(None, "mapping", keys=_synthetic_keys)
    model: ModelConfig = setting(ModelConfig(), ModelConfig)
    training: TrainingConfig = setting(TrainingConfig(), TrainingConfig)
    raw: Optional[RawConfig] = setting(None, RawConfig)
    runtime: Optional[dict] = setting(None, "mapping", help="what the trainer records, e.g. the artefact folder")

    @classmethod
    def parse(cls, mapping, source="config", *, check_values=True) -> "RunConfig":
        """The typed configuration of a merged mapping; ConfigError (one line) on anything wrong.

        Args:
            mapping: dict. The merged configuration (files, hparams and flags).
            source: the file (or description) errors name; a file's line and column are given.
            check_values: False checks only the keys and the kinds of their values.
        """
        if not isinstance(mapping, dict):
            raise ConfigError("a configuration must be a mapping of keys to values", source)
        parse = _Parse(source, check_values)
        config = cls._parse(mapping, (), parse)
        if check_values:
            config._check_raw_mode(source)
        return config

    def updated(self, changes: dict, source="config", *, check_values=True) -> "RunConfig":
        """A new RunConfig, checked again: `to_dict()` with `changes` (a nested mapping) merged in."""
        return RunConfig.parse(deep_update(self.to_dict(), changes), source, check_values=check_values)

    def _check_raw_mode(self, source):
        if self.mode != "raw" and self.dataset in RAW_ONLY_DATASETS:
            raise ConfigError(
                f"dataset {self.dataset} holds face crops and waveforms: train it with mode raw (--mode raw)", source
            )
        if self.mode != "raw":
            return
        if self.dataset not in RAW_DATASETS:
            raise ConfigError(
                f"mode raw needs a corpus of face crops and waveforms; of the built-in adapters only "
                f"{', '.join(RAW_DATASETS)} provides one (not {self.dataset})",
                source,
            )
        for key in RAW_WEIGHT_KEYS:
            path = getattr(self.raw, key) if self.raw is not None else None
            if path is not None and not Path(path).expanduser().is_file():
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{key.split('_')[0]} backbone weight file does not exist (raw.{key} / {flag})", path)


def as_run_config(config, source="config") -> RunConfig:
    """`config` itself when it is a RunConfig; a mapping (a script's or a test's dict) parsed into one,
    its keys and kinds checked (its values as they are)."""
    if isinstance(config, RunConfig):
        return config
    return RunConfig.parse(copy.deepcopy(dict(config)), source, check_values=False)


def parse_section(section, mapping, path: str, source="config"):
    """One section (e.g. `TrainingConfig`) of a mapping, checked, defaults filled in; `path` ("training")
    names its keys in errors."""
    return section._parse(mapping or {}, tuple(path.split(".")), _Parse(source, True))


def resolve(mapping: dict, source="config") -> RunConfig:
    """The resolved configuration of a merged mapping: `RunConfig.parse(mapping, source)`."""
    return RunConfig.parse(mapping, source)


def resolve_saved(mapping: dict, source) -> RunConfig:
    """A run directory's `config.json` with today's defaults filled in for keys it predates; its keys
    and kinds are checked, its values not (they were when the run started, e.g. a backbone weight
    file that has moved since does not stop the run's evaluation)."""
    return RunConfig.parse(mapping, source, check_values=False)


def describe(section=RunConfig, prefix="") -> list:
    """Lines `key: default  # help` of every key, for `python -m pipelines.settings`."""
    lines = []
    for f in dataclasses.fields(section):
        kind = f.metadata["kind"]
        if isinstance(kind, type) and issubclass(kind, Section):
            lines.append(f"{prefix}{f.name}:")
            lines += describe(kind, prefix + "  ")
            continue
        default = _default_of(f)
        value = yaml.safe_dump(_plain(default), default_flow_style=True).strip().removesuffix("\n...")
        text = f"{prefix}{f.name}: {value}"
        rule = f.metadata["rule"]
        allowed = rule.message.replace(", got {value!r}", "").replace("{value!r} is not ", "must be ") if rule else ""
        notes = [n for n in (f.metadata["help"], allowed) if n]
        lines.append(text + (f"  # {'; '.join(notes)}" if notes else ""))
    return lines
