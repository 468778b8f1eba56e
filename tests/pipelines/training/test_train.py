"""End-to-end tests of `python -m pipelines.train` on tiny corpora."""

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

from tests.pipelines.commands import run_command

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
    "model": {"gru_units": 4, "gru_layers": 1, "latent_dim": 4, "num_heads": 2, "num_transformer_layers": 1},
    "training": {"epochs": 2, "window_seconds": 6.0, "window_hop_seconds": 3.0, "batch_size": 4},
}


def numpy_ccc(x, y):
    """AVEC 2019 calc_scores.py's CCC: covariance / n, variances / (n - 1)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)


def write_config(path: Path, **updates) -> Path:
    config = json.loads(json.dumps(TINY))
    for section, values in updates.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    os.environ["COLD_KERAS_CACHE"] = str(root)
    return root


def cli(args, env_cache, timeout=600, **kwargs):
    env = {**os.environ, "COLD_KERAS_CACHE": str(env_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def read_avec_labels(path: Path):
    rows = list(csv.reader(open(path), delimiter=";"))
    header = [h.strip() for h in rows[0]]
    data = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    return {name: data[:, header.index(name) - 1] for name in ("arousal", "valence")}


@pytest.fixture(scope="session")
def regression_run(cache, tmp_path_factory):
    """One cold_fusion regression run through the command line, shared by several tests."""
    tmp = tmp_path_factory.mktemp("regression")
    config = write_config(tmp / "tiny.yaml")
    run_dir = tmp / "run"
    result = cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(config),
            "--model",
            "cold_fusion",
            "--output-dir",
            str(run_dir),
            "--quiet",
        ],
        cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
def test_regression_run_writes_the_run_directory(regression_run):
    run_dir, result = regression_run
    for name in ("config.json", "model.keras", "metrics.json", "history.csv", "checkpoints/best.weights.h5"):
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["name"] == "cold_fusion" and config["training"]["epochs"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"devel", "test"}
    assert set(metrics["devel"]) == {"av", "audio", "visual"}
    row = metrics["devel"]["av"]
    assert math.isclose(row["ccc_mean"], (row["ccc_valence"] + row["ccc_arousal"]) / 2, rel_tol=1e-6)
    # The printed table names every branch.
    assert "CCC mean" in result.stdout and "visual" in result.stdout
    history = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [int(r["epoch"]) for r in history] == [0, 1]
    for term in ("loss_emo", "loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu", "val_ccc_mean"):
        assert term in history[0] and math.isfinite(float(history[-1][term])), term


@pytest.mark.slow
def test_prediction_csvs_score_like_metrics_json(regression_run, cache):
    """The AVEC-format predictions, scored with an independent CCC, reproduce metrics.json."""
    run_dir, _ = regression_run
    config = json.loads((run_dir / "config.json").read_text())
    labels_dir = next(Path(cache).glob("synthetic/*/labels"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    files = sorted((run_dir / "predictions" / "devel").glob("*.csv"))
    assert files
    preds = {"arousal": [], "valence": []}
    golds = {"arousal": [], "valence": []}
    for path in files:
        rows = list(csv.reader(open(path), delimiter=";"))
        assert rows[0] == ["name", "timestamp", "arousal", "valence"]
        assert rows[1][0] == f"'{path.stem}'"
        gold = read_avec_labels(labels_dir / path.name)
        values = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
        assert len(values) == len(gold["arousal"])
        preds["arousal"].append(values[:, 0])
        preds["valence"].append(values[:, 1])
        for key in golds:
            golds[key].append(gold[key])
    for key in ("arousal", "valence"):
        expected = numpy_ccc(np.concatenate(golds[key]), np.concatenate(preds[key]))
        assert metrics["devel"]["av"][f"ccc_{key}"] == pytest.approx(expected, abs=1e-4)
    assert config["runtime"]["policy"] == "float32"


@pytest.mark.slow
def test_second_run_of_a_finished_command_reuses_it(regression_run, cache, tmp_path):
    run_dir, _ = regression_run
    config = tmp_path / "tiny.yaml"
    write_config(config)
    before = (run_dir / "model.keras").stat().st_mtime
    result = cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(config),
            "--model",
            "cold_fusion",
            "--output-dir",
            str(run_dir),
            "--quiet",
        ],
        cache,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already holds a finished run" in result.stdout
    assert (run_dir / "model.keras").stat().st_mtime == before


@pytest.mark.slow
def test_changed_settings_in_an_existing_run_dir_are_refused(regression_run, cache, tmp_path):
    run_dir, _ = regression_run
    config = write_config(tmp_path / "tiny.yaml")
    result = cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(config),
            "--model",
            "cold_fusion",
            "--lambda-regu",
            "0.5",
            "--output-dir",
            str(run_dir),
        ],
        cache,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "model.lambda_regu: 0.0001 -> 0.5" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_classification_baseline_end_to_end(cache, tmp_path):
    from pipelines.config import files as config_lib
    from pipelines.config.merging import deep_update
    from pipelines.training import train

    config = deep_update(config_lib.load_file(config_lib.default_config_path("synthetic")), TINY)
    config["task"] = "classification"
    config["model"]["name"] = "context_fusion"
    config["training"]["oversample"] = True
    metrics = train.run(config_lib.validate(config), tmp_path / "run", progress=False)
    row = metrics["devel"]["av"]
    for key in ("precision_macro", "recall_macro", "f1_macro", "ece_mean", "ece_ts_mean"):
        assert 0.0 <= row[key] <= 1.0, key
    assert set(metrics["devel"]) == {"av", "audio", "visual"}
    files = list((tmp_path / "run" / "predictions" / "devel").glob("*.csv"))
    values = {row[2] for path in files for row in list(csv.reader(open(path), delimiter=";"))[1:]}
    assert values <= {"-1", "0", "1"}


def test_missing_data_dir_is_one_clear_line(cache):
    result = cli(["--dataset", "avec"], cache, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --data-dir is required for --dataset avec: pass the corpus folder (or set data_dir in the config)"
    )


def test_bad_flag_values_are_reported_without_traceback(cache, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: cold_fusion\n  lambda_regu: [1\n")
    result = cli(["--dataset", "synthetic", "--config", str(bad)], cache, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad}:") and "Traceback" not in result.stderr


@pytest.mark.slow
def test_mixed_bfloat16_run_has_finite_losses(cache, tmp_path):
    import keras

    config = write_config(tmp_path / "tiny.yaml", training={"epochs": 1})
    before = keras.config.dtype_policy().name
    result = run_command(
        "train",
        [
            "--dataset",
            "synthetic",
            "--config",
            str(config),
            "--mixed-precision",
            "bfloat16",
            "--output-dir",
            str(tmp_path / "run"),
            "--quiet",
        ],
        cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert keras.config.dtype_policy().name == before  # put back for the tests after this one
    history = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    for term in ("loss", "loss_emo", "loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu"):
        assert math.isfinite(float(history[0][term])), term
    assert json.loads((tmp_path / "run" / "config.json").read_text())["runtime"]["policy"] == "mixed_bfloat16"


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(cache, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", training={"epochs": 1})
    result = cli(
        [
            "--dataset",
            "synthetic",
            "--config",
            str(config),
            "--distribute",
            "mirrored",
            "--model",
            "context_fusion",
            "--output-dir",
            str(tmp_path / "run"),
            "--quiet",
        ],
        cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"]["replicas"] == 2
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_iemocap_utterance_level_classification(cache, tmp_path):
    """IEMOCAP fixture in its real layout: sequence-level labels, utterance predictions and scores."""
    from cold_keras import metrics as cmetrics
    from pipelines.config import files as config_lib
    from pipelines.config.merging import deep_update
    from pipelines.training import train
    from tests.fixtures import write_iemocap_fixture

    truth = write_iemocap_fixture(
        tmp_path / "IEMOCAP", tmp_path / "feats", utterances_per_speaker=4, audio_dim=5, visual_dim=4
    )
    config = config_lib.load_file(config_lib.default_config_path("iemocap"))
    config = deep_update(
        config, {"model": TINY["model"], "training": {"epochs": 1, "window_seconds": 3.0, "window_hop_seconds": 1.5}}
    )
    config.update(data_dir=str(tmp_path / "IEMOCAP"), features_dir=str(tmp_path / "feats"))
    metrics = train.run(config_lib.validate(config), tmp_path / "run", progress=False)

    assert set(metrics) == {"devel", "test"}
    rows = list(csv.reader(open(tmp_path / "run" / "predictions" / "devel" / "utterances.csv"), delimiter=";"))
    assert rows[0] == ["name", "timestamp", "arousal", "valence"]
    devel = {name: record for name, record in truth.items() if record["session"] == 5 and record["gender"] == "F"}
    assert sorted(row[0].strip("'") for row in rows[1:]) == sorted(devel)

    def bins(raw):  # (x - 3) / 2 in [-1, 1], then the paper's bins at +-0.05
        value = (raw - 3.0) / 2.0
        return 0 if value < -0.05 else (2 if value > 0.05 else 1)

    for column, dim in ((2, "arousal"), (3, "valence")):
        predicted = np.array([int(row[column]) + 1 for row in rows[1:]])
        labels = np.array([bins(devel[row[0].strip("'")][f"{dim}_raw"]) for row in rows[1:]])
        expected_f1 = cmetrics.precision_recall_f1(labels, predicted, 3)[2]
        assert metrics["devel"]["av"][f"f1_{dim}"] == pytest.approx(expected_f1, abs=1e-6)


@pytest.mark.slow
def test_avec_recording_without_visual_features_is_refused_or_marked_absent(cache, tmp_path):
    from tests.fixtures import write_avec_fixture

    root = tmp_path / "avec"
    names = ("Train_DE_01", "Train_DE_02", "Train_HU_01", "Devel_DE_01", "Devel_HU_01", "Test_CN_01")
    write_avec_fixture(root, recordings=names, num_frames=40)
    missing = root / "au" / "Devel_HU_01.csv"
    missing.unlink()
    args = [
        "--dataset",
        "avec",
        "--data-dir",
        str(root),
        "--audio-features",
        "egemaps",
        "--visual-features",
        "au",
        "--config",
        str(
            write_config(
                tmp_path / "tiny.yaml", training={"epochs": 1, "window_seconds": 2.0, "window_hop_seconds": 1.0}
            )
        ),
        "--quiet",
    ]
    # In this process (`tests.pipelines.commands`): the runs above and below start real ones.
    refused = run_command("train", args + ["--output-dir", str(tmp_path / "refused")], cache)
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert "Traceback" not in refused.stderr and last.startswith("error:")
    assert "Devel_HU_01" in last and "--allow-missing-modality" in last

    run_dir = tmp_path / "absent"
    result = run_command("train", args + ["--allow-missing-modality", "--output-dir", str(run_dir)], cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["allow_missing_modality"] is True

    import keras

    from cold_keras.models import inference_model
    from pipelines.components import input_pipeline
    from pipelines.evaluation import scoring as evaluation

    artifact_dir = json.loads((run_dir / "config.json").read_text())["runtime"]["artifact_dir"]
    recordings = {r["name"]: r for r in input_pipeline.iter_recordings(artifact_dir, "devel")}
    assert recordings["Devel_HU_01"]["visual_present"].sum() == 0
    assert recordings["Devel_DE_01"]["visual_present"].all()
    infer = inference_model(keras.saving.load_model(run_dir / "model.keras"))
    predictions = {p["name"]: p["outputs"] for p in evaluation.predict_recordings(infer, recordings.values())}
    np.testing.assert_array_equal(predictions["Devel_HU_01"]["visual_weight"], 0.0)
    np.testing.assert_array_equal(predictions["Devel_HU_01"]["audio_weight"], 1.0)
    assert (predictions["Devel_DE_01"]["visual_weight"] > 0).all()


@pytest.mark.slow
def test_avec_as_distributed_trains_under_the_defaults_and_names_the_shared_recordings(cache, tmp_path):
    """Dyadic pairs with the same audio features, files padded past the labels, a zero start: the
    main command trains on it with no extra flag and says in one line which recordings share features."""
    from tests.fixtures import AVEC_PAIRS, write_avec_real_fixture

    root = tmp_path / "AVEC2019_CES"
    write_avec_real_fixture(root)
    run_dir = tmp_path / "run"
    config = write_config(
        tmp_path / "tiny.yaml", training={"epochs": 1, "window_seconds": 4.0, "window_hop_seconds": 4.0}
    )
    result = run_command(
        "train",
        ["--dataset", "avec", "--data-dir", str(root), "--audio-features", "egemaps,mfcc"]
        + ["--visual-features", "au,baseline", "--config", str(config), "--quiet", "--output-dir", str(run_dir)],
        cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    shared = [line for line in result.stderr.splitlines() if "share feature values" in line]
    assert len(shared) == 1 and shared[0].startswith("example_gen: 10 recordings share feature values"), shared
    assert all(f"{first}={second}" in shared[0] for first, second in AVEC_PAIRS)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(math.isfinite(metrics["devel"]["av"][f"ccc_{key}"]) for key in ("valence", "arousal"))
    report = json.loads((run_dir / "config.json").read_text())["runtime"]["artifact_dir"]
    groups = json.loads((Path(report) / "manifest.json").read_text())["corpus_report"]["recordings_sharing_features"]
    assert [group["recordings"] for group in groups] == [list(pair) for pair in AVEC_PAIRS]
