"""The equal-budget protocol (`python -m pipelines.benchmark`): the budget per model, the choice
between default and tuned configuration, the figures and the t-tests, with stand-ins for the trainer
and the tuner; and its command-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import files as config_lib
from pipelines.config.merging import deep_update

REPO = Path(__file__).resolve().parents[3]
TINY = {
    "synthetic": {
        "seed": 3,
        "num_train": 3,
        "num_devel": 2,
        "num_test": 2,
        "duration_seconds": 24.0,
        "audio_dim": 6,
        "visual_dim": 8,
    },
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}


def tiny_config():
    config = deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
    return config_lib.validate(config)


# --------------------------------------------------------------------------- the protocol's logic alone


def test_protocol_logic_with_stand_in_training(tmp_path, monkeypatch):
    """The protocol with stand-ins for the trainer and the tuner: which runs it asks for, what it
    chooses and the figures it reports."""
    from pipelines.experiments import benchmark
    from pipelines.training import train, tune

    default_val = {"audio": 0.5, "cold_fusion": 0.7}
    search = {
        "audio": ({"learning_rate": 2e-3}, 0.6),  # beats the default: tuned
        "cold_fusion": ({"learning_rate": 1e-3, "lambda_regu": 3.0}, 0.65),
    }  # loses: default kept
    trained, searched = [], []

    def fake_train(config, run_dir, progress=True):
        run_dir = Path(run_dir)
        model, seed = config.model.name, config.training.seed
        lr = config.training.learning_rate
        trained.append((model, seed, lr, run_dir.parent.name))
        run_dir.mkdir(parents=True, exist_ok=True)
        val = default_val[model] if lr == 5e-3 else search[model][1]
        (run_dir / "history.csv").write_text(f"epoch,val_ccc_mean\n0,{val - 0.1}\n1,{val}\n")
        test = 0.1 * seed + (0.3 if model == "audio" else 0.6) + (0.05 + 0.05 * seed if lr != 5e-3 else 0.0)
        (run_dir / "metrics.json").write_text(json.dumps({"test": {"av": {"ccc_mean": test}}}))

    def fake_tune(config, output_dir, *, tuner, max_trials, tune_learning_rate, progress):
        model = config.model.name
        searched.append((model, tuner, max_trials, tune_learning_rate, config.training.seed))
        values, score = search[model]
        return {"best": {"hyperparameters": values, "score": score}, "trials": []}

    monkeypatch.setattr(train, "run", fake_train)
    monkeypatch.setattr(tune, "run", fake_tune)
    results = benchmark.run(
        tiny_config(), tmp_path, models=["audio", "cold_fusion"], trials=3, seeds=[0, 1], progress=False
    )
    assert searched == [("audio", "random", 3, True, 0), ("cold_fusion", "random", 3, True, 0)]
    assert trained == [
        ("audio", 0, 5e-3, "default"),
        ("audio", 1, 5e-3, "default"),
        ("audio", 0, 2e-3, "tuned"),
        ("audio", 1, 2e-3, "tuned"),
        ("cold_fusion", 0, 5e-3, "default"),
        ("cold_fusion", 1, 5e-3, "default"),
    ]
    audio, cold = results["models"]["audio"], results["models"]["cold_fusion"]
    assert audio["chosen"] == "tuned" and audio["hparams"] == {"learning_rate": 2e-3}
    assert cold["chosen"] == "default" and cold["hparams"] == {}
    assert audio["default"] == pytest.approx([0.3, 0.4]) and audio["best"] == pytest.approx([0.35, 0.5])
    assert cold["best"] == cold["default"] == pytest.approx([0.6, 0.7])
    assert audio["default_validation"] == pytest.approx(0.5)
    d = np.array([0.35, 0.5]) - np.array([0.6, 0.7])
    test = audio["test_vs_reference"]
    assert test["n"] == 2 and test["mean_difference"] == pytest.approx(d.mean())
    assert test["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(2)))
    table = benchmark.format_results(results)
    assert "audio" in table and "0.425 ± 0.106" in table and "0.650 ± 0.071" in table
    assert json.loads((tmp_path / "results.json").read_text())["models"]["audio"]["chosen"] == "tuned"
    with pytest.raises(Exception, match="different settings"):
        benchmark.run(tiny_config(), tmp_path, models=["audio"], trials=3, seeds=[0, 1], progress=False)


def test_unknown_model_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.benchmark",
            "--dataset",
            "synthetic",
            "--models",
            "audio,nope",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --models: unknown model(s) nope;")
