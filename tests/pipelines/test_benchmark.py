"""The equal-budget protocol (`python -m pipelines.benchmark`) on a tiny synthetic corpus: the
budget per model, the choice between default and tuned configuration, the figures, the t-tests
and resuming."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines import config as config_lib

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "synthetic": {"seed": 3, "num_train": 3, "num_devel": 2, "num_test": 2, "duration_seconds": 24.0,
                  "audio_dim": 6, "visual_dim": 8},
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "training": {"epochs": 1, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}
MODELS = ("audio", "cold_fusion")
SEEDS = (0, 1)


def tiny_config():
    config = config_lib.deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
    return config_lib.validate(config)


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    from pipelines import benchmark

    os.environ["COLD_KERAS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    out = tmp_path_factory.mktemp("protocol")
    results = benchmark.run(tiny_config(), out, models=MODELS, trials=1, seeds=SEEDS, progress=False)
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("metrics.json")}
    again = benchmark.run(tiny_config(), out, models=MODELS, trials=1, seeds=SEEDS, progress=False)
    return {"out": out, "results": results, "again": again, "stamps": stamps}


def test_every_model_gets_the_same_search_budget(protocol):
    out = protocol["out"]
    for model in MODELS:
        trials = list((out / "tuning" / model / "search").glob("trial_*/trial.json"))
        assert len(trials) == 1
        values = json.loads(trials[0].read_text())["hyperparameters"]["values"]
        searched = {"learning_rate"} | ({"lambda_co_visual", "lambda_co_audio", "lambda_co_cross", "lambda_regu"}
                                        if model == "cold_fusion" else set())
        assert set(values) == searched
        assert 1e-4 <= values["learning_rate"] <= 1e-2


def test_the_best_configuration_is_never_worse_than_the_default_on_validation(protocol):
    out, results = protocol["out"], protocol["results"]
    for model in MODELS:
        entry = results["models"][model]
        history = (out / "runs" / model / "default" / "seed0" / "history.csv").read_text().splitlines()
        column = history[0].split(",").index("val_ccc_mean")
        default_val = max(float(line.split(",")[column]) for line in history[1:])
        assert entry["default_validation"] == pytest.approx(default_val)
        search = json.loads((out / "tuning" / model / "best_hparams.json").read_text())
        tuned = search["score"] > default_val
        assert entry["chosen"] == ("tuned" if tuned else "default")
        assert (out / "runs" / model / "tuned").exists() == tuned
        kind = "tuned" if tuned else "default"
        for seed, best, default in zip(SEEDS, entry["best"], entry["default"]):
            metrics = json.loads((out / "runs" / model / kind / f"seed{seed}" / "metrics.json").read_text())
            assert best == pytest.approx(metrics["test"]["av"]["ccc_mean"])
            metrics = json.loads((out / "runs" / model / "default" / f"seed{seed}" / "metrics.json").read_text())
            assert default == pytest.approx(metrics["test"]["av"]["ccc_mean"])
            if tuned:
                config = json.loads((out / "runs" / model / "tuned" / f"seed{seed}" / "config.json").read_text())
                assert config["training"]["learning_rate"] == pytest.approx(search["hyperparameters"]["learning_rate"])
                assert config["training"]["seed"] == seed


def test_paired_t_test_against_cold_over_seeds(protocol):
    results = protocol["results"]
    a = np.array(results["models"]["audio"]["best"])
    b = np.array(results["models"]["cold_fusion"]["best"])
    d = a - b
    test = results["models"]["audio"]["test_vs_reference"]
    assert test["n"] == 2 and test["mean_difference"] == pytest.approx(d.mean())
    expected_t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert test["t"] == pytest.approx(expected_t, rel=1e-6)
    assert results["models"]["cold_fusion"]["test_vs_reference"] is None
    saved = json.loads((protocol["out"] / "results.json").read_text())
    assert saved["models"]["audio"]["best"] == pytest.approx(list(a))
    assert (protocol["out"] / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_running_again_trains_nothing(protocol):
    stamps = {path: path.stat().st_mtime_ns for path in protocol["out"].rglob("metrics.json")}
    assert stamps == protocol["stamps"]
    assert protocol["again"]["models"]["audio"]["best"] == protocol["results"]["models"]["audio"]["best"]


def test_unknown_model_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.benchmark", "--dataset", "synthetic", "--models",
                             "audio,nope", "--output-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --models: unknown model(s) nope;")
