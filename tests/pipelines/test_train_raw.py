"""Raw mode end to end: `python -m pipelines.train --mode raw`, face masking in the evaluator, bad weight files."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.errors import ConfigError
from tests.pipelines.conftest import TINY_LOGMEL, TINY_RAW

REPO = Path(__file__).resolve().parents[2]
VISUAL = {"filters": [4, 8], "dense_units": 8, "embedding_dim": 16}
AUDIO = {"filters": [4], "dense_units": 8, "embedding_dim": 8}
TINY = {
    "synthetic": {k: v for k, v in TINY_RAW.items() if k != "raw"},
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4},
    "raw": {"logmel": TINY_LOGMEL, "visual_backbone": VISUAL, "audio_backbone": AUDIO},
    "training": {"epochs": 1, "window_seconds": 4.0, "window_hop_seconds": 2.0, "batch_size": 4},
}


def cli(args, cache, timeout=600):
    env = {**os.environ, "COLD_KERAS_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    """One tiny raw-mode cold_fusion run under mixed_bfloat16, through the command line."""
    tmp = tmp_path_factory.mktemp("raw_run")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = cli(
        [
            "--dataset",
            "synthetic",
            "--mode",
            "raw",
            "--config",
            str(config),
            "--mixed-precision",
            "mixed_bfloat16",
            "--output-dir",
            str(tmp / "run"),
            "--quiet",
        ],
        tmp / "cache",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", tmp / "cache"


@pytest.mark.slow
def test_raw_run_trains_scores_and_survives_face_masking(raw_run):
    run_dir, cache = raw_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["mode"] == "raw" and config["runtime"]["policy"] == "mixed_bfloat16"
    assert config["raw"]["augment"]["rotate_degrees"] == 30  # the paper's augmentations from synthetic_raw.yaml
    manifest = json.loads((Path(config["runtime"]["artifact_dir"]) / "manifest.json").read_text())
    assert manifest["mode"] == "raw" and manifest["visual_shape"] == [16, 16, 3]
    assert manifest["audio_shape"] == [round(0.5 / 0.02), 8]
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    for term in ("loss", "loss_emo", "loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu"):
        assert math.isfinite(float(history[0][term])), term
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"devel", "test"} and set(metrics["devel"]) == {"av", "audio", "visual"}
    assert all(math.isfinite(v) for row in metrics["devel"].values() for v in row.values())
    rows = list(csv.reader(open(run_dir / "predictions" / "devel" / "Devel_SY_01.csv"), delimiter=";"))
    assert rows[0] == ["name", "timestamp", "arousal", "valence"] and len(rows) - 1 == 120
    assert (run_dir / "model.keras").is_file()

    from pipelines import evaluate

    report = evaluate.run(run_dir, "devel", corrupt="visual:0.5", plot_first=0, verbose=False)
    assert report["corruption"]["mode"] == "face_mask" and report["corruption"]["num_frames_corrupted"] == 60
    assert report["scores"]["audio"] == report["scores_clean"]["audio"]  # only the faces were masked
    assert report["scores"]["visual"] != report["scores_clean"]["visual"]
    assert Path(report["output_dir"]).name == "devel_corrupt-visual-0.5-face_mask"
    with pytest.raises(ConfigError, match="face_mask applies to the faces"):
        evaluate.run(run_dir, "devel", corrupt="audio:0.5", corrupt_mode="face_mask", verbose=False)


def test_missing_weight_file_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "face.npz"
    result = cli(
        ["--dataset", "synthetic", "--mode", "raw", "--visual-backbone-weights", str(missing)],
        tmp_path / "cache",
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {missing}: visual backbone weight file does not exist "
        "(raw.visual_backbone_weights / --visual-backbone-weights)"
    )


def test_help_describes_the_raw_flags(tmp_path):
    result = cli(["--help"], tmp_path, timeout=120)
    assert result.returncode == 0
    for flag in ("--mode {features,raw}", "--visual-backbone-weights", "--audio-backbone-weights"):
        assert flag in result.stdout, flag


def test_weight_file_that_does_not_fit_is_a_config_error(tmp_path):
    from cold_keras.backbones import VGGish
    from pipelines import training_setup

    other = VGGish(**{**AUDIO, "dense_units": 16})
    other(np.zeros((1, 25, 8), np.float32))
    path = other.save_weights_file(tmp_path / "vggish.npz")
    config = {
        "model": {"name": "audio"},
        "raw": {"visual_backbone": VISUAL, "audio_backbone": AUDIO, "audio_backbone_weights": str(path)},
    }
    manifest = {"mode": "raw", "visual_shape": [16, 16, 3], "audio_shape": [25, 8]}
    with pytest.raises(ConfigError) as error:
        training_setup.build_raw(
            config, manifest, "regression", False, {"gru_units": 4, "gru_layers": 1, "latent_dim": 4}
        )
    assert error.value.path == str(path)
    assert "fc_1/kernel has shape" in error.value.message and "mel bins" in error.value.message
