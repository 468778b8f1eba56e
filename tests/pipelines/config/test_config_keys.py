"""Config files: unknown keys and ill-typed values fail in one line naming the file, key and nearest key."""

import subprocess
import sys

import pytest

from pipelines.config import files as config_lib
from pipelines.config.merging import deep_update
from pipelines.core.errors import ConfigError


def _config(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("training:\n  weigth_decay: 0.5\n", 2, "training.weigth_decay: unknown key (did you mean weight_decay?)"),
        (
            "# comment\nmodel:\n  name: cold_fusion\n  gru_unit: 8\n",
            4,
            "model.gru_unit: unknown key (did you mean gru_units?)",
        ),
        ("training:\n  epochs: ten\n", 2, "training.epochs: expected an integer, got 'ten'"),
    ],
)
def test_command_line_fails_in_one_line_before_data_are_touched(tmp_path, line, text, message):
    """The data folder does not exist: the config error comes first, so nothing read any data."""
    path = _config(tmp_path, text)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.train",
            "--dataset",
            "avec",
            "--data-dir",
            str(tmp_path / "no-such-corpus"),
            "--config",
            str(path),
            "--output-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}:{line}:3: {message}"]
    assert not (tmp_path / "run").exists()


def _check(tmp_path, text, dataset="synthetic"):
    path = _config(tmp_path, text)
    config = deep_update(config_lib.load_file(config_lib.default_config_path(dataset)), config_lib.load_file(path))
    config_lib.check_known_keys(config, str(path))
    return path


@pytest.mark.parametrize(
    "text,expected",
    [
        ("trainng:\n  epochs: 2\n", "1:1: trainng: unknown key (did you mean training?)"),
        (
            "model:\n  frobnicate: 3\n",
            "2:3: model.frobnicate: unknown key (known keys: audio_atypicality, audio_norm, ",
        ),
        (
            "training:\n  augment:\n    noise_sdt: 0.1\n",
            "3:5: training.augment.noise_sdt: unknown key (did you mean noise_std?)",
        ),
        ("raw:\n  logmel:\n    mel_bin: 3\n", "3:5: raw.logmel.mel_bin: unknown key (did you mean mel_bins?)"),
        ("synthetic:\n  num_trian: 3\n", "2:3: synthetic.num_trian: unknown key (did you mean num_train?)"),
        ("training:\n  learning_rate: fast\n", "2:3: training.learning_rate: expected a number, got 'fast'"),
        ("training:\n  oversample: 1\n", "2:3: training.oversample: expected true or false, got 1"),
        ("model: [1, 2]\n", "1:1: model: expected a mapping, got [1, 2]"),
        ("features:\n  audio: audio\n", "2:3: features.audio: expected a list, got 'audio'"),
        ("strict: maybe\n", "1:1: strict: expected true or false, got 'maybe'"),
    ],
)
def test_unknown_and_ill_typed_keys(tmp_path, text, expected):
    with pytest.raises(ConfigError) as error:
        _check(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'bad.yaml'}:{expected}")


@pytest.mark.parametrize(
    "text",
    [
        "training:\n  weight_decay: 0\n  window_seconds: 20\n  augment: {noise_std: 0.1}\n",  # an int where a float is
        "model:\n  transformer_dim: 64\n  class_weights: null\n",  # documented optional model keys
        "synthetic:\n  num_train: 4\n  duration_seconds: 20.0\n",
        "strict: false\nraw:\n  augment: {flip: false}\n  visual_backbone: {convs_per_block: 2}\n",
        "data_dir: /some/where\n",
    ],
)
def test_known_keys_pass(tmp_path, text):
    _check(tmp_path, text)
    _check(tmp_path, text, dataset="avec")


def test_every_shipped_config_passes():
    for path in sorted(config_lib.CONFIG_DIR.glob("*.yaml")):
        config_lib.check_known_keys(config_lib.load_file(path), str(path))


def test_lenient_flag_reaches_the_adapter_options(tmp_path):
    from pipelines import train as train_command
    from pipelines.config import flags as run_options
    from pipelines.runs import prepare

    config = run_options.build_config(
        train_command.parse_args(["--dataset", "avec", "--data-dir", str(tmp_path), "--lenient"])
    )
    assert config.strict is False
    assert prepare.corpus_options(config)["strict"] is False
    config = run_options.build_config(train_command.parse_args(["--dataset", "avec", "--data-dir", str(tmp_path)]))
    assert "strict" not in config.to_dict() and "strict" not in prepare.corpus_options(config)
    config = run_options.build_config(train_command.parse_args(["--dataset", "synthetic", "--lenient"]))
    with pytest.raises(ConfigError, match="--lenient .* applies to the avec and iemocap corpora, not synthetic"):
        prepare.corpus_options(config)
