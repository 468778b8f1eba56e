"""The augmentation settings (`training.augment` of a config, and `raw.augment` in raw mode): their
keys, the paper's raw-mode values and the checks of every value.

TensorFlow-free, so a bad value fails while the configuration is read, before any data are touched;
`pipelines.data.augment` and `pipelines.data.raw_augment` apply the settings.
"""

from __future__ import annotations

from pipelines.core.errors import ConfigError

KEYS = (
    "noise_std",
    "time_mask_frames",
    "modality_dropout_prob",
    "modality_dropout_frames",
    "corrupt_prob",
    "corrupt_frames",
    "corrupt_scale",
    "corrupt_kinds",
)
DEFAULT_CORRUPT_SCALE = 3.0
CORRUPT_KINDS = ("noise", "dropout", "zeros", "frozen", "drift", "desync", "swap")
DEFAULT_CORRUPT_KINDS = ("noise", "dropout")


def check_mapping(config, keys, source) -> dict:
    """`config` with every key of `keys` present (None = off); raises ConfigError on anything else."""
    if config is None:
        return {key: None for key in keys}
    if not isinstance(config, dict):
        raise ConfigError(f"{source} must be a mapping with keys {', '.join(keys)}, got {config!r}")
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    return {key: config.get(key) for key in keys}


def check_number(out, key, low, high=None, integer=False, source="augment") -> None:
    """Checks `out[key]` (None = off) against [low, high] and converts it to int or float in place."""
    value = out[key]
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{source}.{key} must be {kind} {bounds}, got {value!r}")
    out[key] = int(value) if integer else float(value)


def validate_config(config, source="augment") -> dict:
    """Checks an augmentation dict; returns it with every key present (None = off).

    Raises:
        ConfigError: an unknown key or a value out of range, naming both.
    """
    out = check_mapping(config, KEYS, source)
    if config is None:
        return out

    def number(key, low, high=None, integer=False):
        check_number(out, key, low, high, integer, source)

    number("noise_std", 0.0)
    number("time_mask_frames", 1, integer=True)
    number("modality_dropout_prob", 0.0, 1.0)
    number("modality_dropout_frames", 1, integer=True)
    number("corrupt_prob", 0.0, 1.0)
    number("corrupt_frames", 1, integer=True)
    number("corrupt_scale", 0.0)
    if out["corrupt_scale"] == 0.0:
        raise ConfigError(f"{source}.corrupt_scale must be > 0, got 0")
    kinds = out["corrupt_kinds"]
    if kinds is not None:
        if isinstance(kinds, str):
            kinds = [kind.strip() for kind in kinds.split(",")]
        if not isinstance(kinds, (list, tuple)) or not kinds or any(kind not in CORRUPT_KINDS for kind in kinds):
            raise ConfigError(
                f"{source}.corrupt_kinds must be a non-empty list of {', '.join(CORRUPT_KINDS)}, "
                f"got {out['corrupt_kinds']!r}"
            )
        out["corrupt_kinds"] = list(dict.fromkeys(kinds))
    return out


# Raw mode (face crops and log-mel patches): the paper's augmentation.
RAW_PAPER = {
    "flip": True,
    "zoom": 0.25,
    "translate_pixels": 30.0,
    "rotate_degrees": 30.0,
    "time_warp": 50,
    "freq_mask": 27,
    "time_mask": 40,
}
RAW_KEYS = tuple(RAW_PAPER)


def validate_raw_config(config, source="raw.augment") -> dict:
    """Checks a raw augmentation dict; returns it with every key present (None = off).

    Raises:
        ConfigError: an unknown key or a value out of range, naming both.
    """
    out = check_mapping(config, RAW_KEYS, source)
    if config is None:
        return out
    out = {key: value or None for key, value in out.items()}
    if out["flip"] is not None and not isinstance(out["flip"], bool):
        raise ConfigError(f"{source}.flip must be true or false, got {out['flip']!r}")
    limits = {
        "zoom": (0.0, 0.99, False),
        "translate_pixels": (0.0, None, False),
        "rotate_degrees": (0.0, 180.0, False),
        "time_warp": (0, None, True),
        "freq_mask": (0, None, True),
        "time_mask": (0, None, True),
    }
    for key, (low, high, integer) in limits.items():
        check_number(out, key, low, high, integer, source)
    return out
