"""Training stability: the collapse detector, gradient clipping, the learning-rate range test, and a
tiny context-fusion run at the default learning rate whose training CCC must rise."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.config import files as config_lib
from pipelines.config.merging import deep_update
from pipelines.training import lr_finder, stability
from pipelines.training import setup as training_setup
from tests.pipelines.commands import run_command

REPO = Path(__file__).resolve().parents[3]

TINY = {
    "synthetic": {
        "seed": 5,
        "num_train": 4,
        "num_devel": 1,
        "num_test": 1,
        "duration_seconds": 24.0,
        "audio_dim": 6,
        "visual_dim": 8,
    },
    "model": {"name": "context_fusion", "gru_units": 16, "gru_layers": 1, "latent_dim": 8},
    "training": {"epochs": 3, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}


def tiny_config(**training):
    config = deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
    config["training"].update(training)
    return config_lib.validate(config)


# --------------------------------------------------------------------------- collapse detector


def test_a_falling_training_ccc_near_zero_is_a_collapse():
    message = stability.collapse_message([0.11, 0.06, 0.01])
    assert message.startswith("warning: the model has collapsed")
    assert "0.110 (epoch 1) to 0.010 (epoch 3)" in message
    assert "--learning-rate" in message and "--find-lr" in message and "\n" not in message


@pytest.mark.parametrize("history", [[0.1, 0.3, 0.5], [0.02, 0.03], [0.5, 0.4, 0.2], [0.04]])
def test_rising_low_but_not_falling_or_high_is_no_collapse(history):
    # Rising; low but not falling; falling but far from 0; a single low epoch.
    assert stability.collapse_message(history) is None


def test_constant_predictions_are_a_collapse_even_without_a_fall():
    assert "predictions are constant" in stability.collapse_message([0.0, 0.0], constant_predictions=True)


def test_collapse_guard_prints_one_line_once():
    lines = []
    guard = stability.CollapseGuard(print_fn=lines.append)
    for epoch, ccc in enumerate([0.11, 0.05, 0.0, 0.0, 0.0]):
        guard.on_epoch_end(epoch, {"ccc_mean": ccc})
    assert len(lines) == 1 and guard.message == lines[0]
    assert "epoch 2" in lines[0] or "epoch 3" in lines[0]
    quiet = stability.CollapseGuard(print_fn=lines.append)
    quiet.on_epoch_end(0, {"f1_macro": 0.0})  # classification: not watched
    assert quiet.message is None and quiet.history == []


def test_prediction_stats_against_numpy():
    rng = np.random.default_rng(0)
    values = np.tanh(3 * rng.standard_normal(200))
    mask = rng.uniform(size=200) > 0.3
    std, saturated = stability.prediction_stats(values, mask)
    assert std == pytest.approx(np.std(values[mask]))
    assert saturated == pytest.approx(np.mean(np.abs(values[mask]) > 0.995))


# --------------------------------------------------------------------------- gradient clipping


def test_clipnorm_reaches_the_optimizer_and_zero_turns_it_off():
    assert training_setup.optimizer_options({})["global_clipnorm"] == training_setup.DEFAULT_CLIPNORM
    assert training_setup.optimizer_options({"clipnorm": 0.5, "weight_decay": 0.0}) == {
        "weight_decay": 0.0,
        "global_clipnorm": 0.5,
    }
    assert "global_clipnorm" not in training_setup.optimizer_options({"clipnorm": 0})
    assert "global_clipnorm" not in training_setup.optimizer_options({"clipnorm": None})
    assert "use_ema" not in training_setup.optimizer_options({})  # training.ema_momentum: 0 by default
    assert training_setup.optimizer_options({"ema_momentum": 0.9}) == {
        "weight_decay": 1e-4,
        "global_clipnorm": 1.0,
        "use_ema": True,
        "ema_momentum": 0.9,
    }


def test_a_negative_clipnorm_is_a_one_line_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"training": {"clipnorm": -1}}))
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--dataset", "synthetic", "--config", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: training.clipnorm must be a number >= 0 (0 or null: no clipping), got -1"
    )


# --------------------------------------------------------------------------- learning-rate range test


def test_sweep_rates_are_exponential():
    rates = lr_finder.sweep_rates(1e-5, 1.0, 11)
    expected = np.array([1e-5 * (1.0 / 1e-5) ** (i / 10) for i in range(11)])
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_smoothing_is_a_bias_corrected_moving_average():
    losses = [3.0, 2.0, 5.0, 1.0]
    beta, average, expected = 0.9, 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        expected.append(average / (1 - beta ** (i + 1)))
    np.testing.assert_allclose(lr_finder.smooth(losses), expected)
    assert lr_finder.smooth([2.0])[0] == pytest.approx(2.0)


def test_suggestion_is_a_tenth_of_the_rate_at_the_smoothed_minimum():
    rates = lr_finder.sweep_rates(1e-4, 1.0, 60)
    # A loss that falls until 1e-2 and explodes afterwards, then turns NaN.
    losses = np.where(rates <= 1e-2, 2.0 - 0.3 * np.log10(rates / 1e-4), 1.4 + 5 * np.log10(rates / 1e-2))
    losses[-5:] = np.nan
    suggested, at_minimum = lr_finder.suggest(rates, losses)
    smoothed = lr_finder.smooth(losses[:-5])
    assert at_minimum == pytest.approx(rates[int(np.argmin(smoothed))])
    assert suggested == pytest.approx(at_minimum / 10)
    assert 1e-3 < at_minimum < 1e-1


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    os.environ["COLD_KERAS_CACHE"] = str(root)
    return root


def test_context_fusion_at_the_default_learning_rate_trains(cache):
    """Regression test of the collapse: at the default rate (5e-3, cosine restarts) and clipping,
    the training CCC of a tiny context-fusion model (the trainer's own model and data) rises and
    the detector stays quiet."""
    import keras

    from pipelines.runs import prepare

    config = tiny_config()
    assert config.training.learning_rate == 5e-3 and config.training.clipnorm == 1.0
    artifact_dir = prepare.prepare_artifacts(config, progress=False)
    inputs = training_setup.make_training_inputs(config, artifact_dir)
    model = training_setup.build_compiled_model(config, inputs.manifest, artifact_dir, inputs.steps_per_epoch)
    assert model.optimizer.global_clipnorm == 1.0
    lines = []
    guard = stability.CollapseGuard(print_fn=lines.append)
    model.fit(inputs.train_ds, epochs=3, callbacks=[guard], verbose=0)
    keras.backend.clear_session(free_memory=False)
    ccc = guard.history
    assert len(ccc) == 3
    assert ccc[-1] > ccc[0] + 0.05, ccc
    assert ccc[-1] > stability.COLLAPSE_CCC
    assert lines == [] and stability.collapse_message(ccc) is None


def test_find_lr_writes_the_plot_and_leaves_the_run_alone(cache, tmp_path):
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    argv = ["--dataset", "synthetic", "--config", config_file, "--output-dir", out, "--find-lr", "--find-lr-steps", 30]
    result = run_command("train", argv + ["--quiet"], cache)  # in this process (tests.pipelines.commands)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "lr_find"
    assert sorted(p.name for p in out.iterdir()) == ["lr_find"]  # no config, checkpoint or history
    assert (folder / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((folder / "lr_find.json").read_text())
    with open(folder / "lr_find.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert record["steps_run"] == len(rows) and 10 < len(rows) <= 30
    rates = np.array([float(r["learning_rate"]) for r in rows])
    np.testing.assert_allclose(rates, lr_finder.sweep_rates(1e-5, 1.0, 30)[: len(rows)], rtol=1e-5)
    losses = np.array([float(r["loss"]) for r in rows])
    expected, _ = lr_finder.suggest(rates, losses)
    assert record["suggested_learning_rate"] == pytest.approx(expected, rel=1e-4)
    assert f"suggested learning rate {record['suggested_learning_rate']:.3g}" in result.stdout
