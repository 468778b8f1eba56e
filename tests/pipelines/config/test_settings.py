"""The typed configuration: defaults declared once, every key checked, old run directories still read."""

import dataclasses
import json

import pytest

from cold_keras.hyperparameters import DEFAULT_HYPERPARAMETERS
from pipelines import settings as settings_command
from pipelines.config import files as config_lib
from pipelines.config import settings
from pipelines.config.merging import deep_update
from pipelines.core.errors import ConfigError


def _resolved(dataset="synthetic", **sections):
    """The resolved configuration as the mapping `config.json` holds (`RunConfig.to_dict()`)."""
    merged = config_lib.load_file(config_lib.default_config_path(dataset))
    return config_lib.validate(deep_update(merged, sections)).to_dict()


def test_the_model_section_takes_the_library_defaults():
    model = settings.RunConfig().model
    for key, default in DEFAULT_HYPERPARAMETERS.items():
        assert getattr(model, key) == default, key
    assert model.name == "cold_fusion"


def test_a_dataset_file_only_overrides_and_every_other_key_gets_its_default():
    config = _resolved()
    assert config["model"]["gru_units"] == 64  # configs/synthetic.yaml
    assert config["model"]["dropout"] == DEFAULT_HYPERPARAMETERS["dropout"]  # not in the file
    assert config["training"]["epochs"] == 6
    assert config["training"]["weight_decay"] == settings.TrainingConfig().weight_decay
    assert config["training"]["backup_every_seconds"] == 60.0
    # Optional keys left unset stay out of the resolved config (and of config.json).
    assert "strict" not in config and "augment" not in config["training"] and "raw" not in config
    assert "audio_norm" not in config["model"]


def test_the_configuration_is_frozen():
    config = settings.RunConfig.parse(_resolved())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.training.epochs = 3
    assert config.training.epochs == 6 and config.model.gru_units == 64


@pytest.mark.parametrize(
    "sections,message",
    [
        ({"model": {"dropout": 1.5}}, "model.dropout must be a number in [0, 1), got 1.5"),
        ({"model": {"gru_units": 0}}, "model.gru_units must be a positive integer, got 0"),
        ({"model": {"name": "cold"}}, "model.name 'cold' is not one of audio, visual,"),
        ({"training": {"weight_decay": -1}}, "training.weight_decay must be a number >= 0, got -1"),
        (
            {"training": {"backup_every_steps": "often"}},
            "training.backup_every_steps must be a positive integer or auto",
        ),
        (
            {"training": {"augment": {"corrupt_prob": 2}}},
            "training.augment.corrupt_prob must be a number in [0.0, 1.0]",
        ),
        ({"training": {"validation_partition": "dev"}}, "training.validation_partition must be one of train, devel"),
        ({"mode": "pixels"}, "mode must be one of features, raw, got 'pixels'"),
        ({"training": {"epochs": None}}, "training.epochs must be a positive integer, got None"),
        ({"training": {"ema_momentum": 1}}, "training.ema_momentum must be a number in [0, 1), got 1"),
        ({"model": {"fusion_guard": None}}, "model.fusion_guard: expected true or false, got null"),
    ],
)
def test_out_of_range_values_fail_naming_the_key(sections, message):
    with pytest.raises(ConfigError) as error:
        _resolved(**sections)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_an_old_config_json_without_todays_keys_still_reads_and_compares_equal(tmp_path):
    today = _resolved()
    old = json.loads(json.dumps(today))
    for key in ("label_delay_seconds", "clipnorm", "backup_every_steps", "backup_every_seconds", "ema_momentum"):
        del old["training"][key]
    for key in ("lambda_reliability", "reliability_novelty", "fusion_guard", "transformer_dim"):
        del old["model"][key]
    old["runtime"] = {"artifact_dir": "/somewhere"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    restored = settings.resolve_saved(json.loads(path.read_text()), path)
    assert restored.training.clipnorm == 1.0 and restored.model.fusion_guard is False
    assert restored.runtime == {"artifact_dir": "/somewhere"}
    assert config_lib.comparable_settings(old) == config_lib.comparable_settings(today)
    changed = deep_update(today, {"training": {"clipnorm": 0.5}})
    assert config_lib.first_difference(
        config_lib.comparable_settings(old), config_lib.comparable_settings(changed)
    ) == ("training.clipnorm: 1.0 -> 0.5")


def test_a_saved_config_with_an_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"dataset": "synthetic", "trainig": {}}))
    with pytest.raises(ConfigError) as error:
        settings.resolve_saved(json.loads(path.read_text()), path)
    assert str(error.value).startswith(f"{path}") and "trainig: unknown key (did you mean training?)" in str(
        error.value
    )


def test_the_settings_listing_shows_every_key_with_its_default(capsys):
    settings_command.main([])
    listing = capsys.readouterr().out
    for key, default in DEFAULT_HYPERPARAMETERS.items():
        if default is not None and not isinstance(default, bool):
            assert f"  {key}: {default}" in listing, key
    assert "  clipnorm: 1.0  # must be a number >= 0 (0 or null: no clipping)" in listing
    assert "  mixed_precision: auto  # must be one of auto, off, float16, bfloat16" in listing


def test_the_trainer_recognises_a_finished_run_whose_config_json_predates_todays_keys(tmp_path):
    from pipelines.training import train

    today = _resolved()
    old = json.loads(json.dumps(today))
    del old["training"]["label_delay_seconds"], old["model"]["fusion_guard"]
    old["runtime"] = {"artifact_dir": "/somewhere"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    (tmp_path / "metrics.json").write_text("{}")
    assert train._check_run_dir(tmp_path, today, overwrite=False) is True
    with pytest.raises(ConfigError, match=r"different settings \(training.clipnorm: 1.0 -> 0.5\)"):
        train._check_run_dir(tmp_path, deep_update(today, {"training": {"clipnorm": 0.5}}), False)
