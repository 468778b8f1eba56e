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

from pipelines.core.errors import ConfigError
from tests.pipelines.commands import run_command
from tests.pipelines.conftest import TINY_LOGMEL, TINY_RAW

REPO = Path(__file__).resolve().parents[3]
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
    """One tiny raw-mode cold_fusion run under mixed_bfloat16, through the command's `main` (in this process)."""
    tmp = tmp_path_factory.mktemp("raw_run")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = run_command(
        "train",
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

    from pipelines.evaluation import evaluate

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
    from pipelines.training import setup as training_setup

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


@pytest.mark.slow
def test_own_recordings_are_predicted_like_the_corpus_the_run_was_scored_on(raw_run, tmp_path, capsys):
    """A raw-mode run predicts on own recordings (faces/<name>.npz + audio/<name>.wav, any names, as
    `pipelines.extract` writes them): the same inputs give the predictions of the training-time path
    (ExampleGen's shards), and frames flagged without a face come out marked absent."""
    import keras

    from cold_keras.models import inference_model
    from pipelines import predict
    from pipelines.components import input_pipeline
    from pipelines.datasets.synthetic_raw import read_faces, read_wav, write_wav
    from pipelines.evaluation import scoring as evaluation

    run_dir, cache = raw_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["runtime"]["raw"]["sample_rate"] == TINY_RAW["sample_rate"]
    assert config["runtime"]["raw"]["visual_shape"] == [16, 16, 3]
    corpus = next(cache.glob("synthetic/*/synthetic.json")).parent
    own = tmp_path / "own"
    (own / "faces").mkdir(parents=True)
    (own / "audio").mkdir()
    names = {"Test_SY_01": "my talk 1", "Devel_SY_01": "interview.2 é"}
    for source, name in names.items():
        faces = read_faces(corpus / "faces" / f"{source}.npz")
        present = np.ones(len(faces), np.uint8)
        if source.startswith("Devel"):
            present[10:20] = 0
            faces = faces.copy()
            faces[10:20] = 0
        np.savez_compressed(own / "faces" / f"{name}.npz", faces=faces, present=present)
        waveform, rate = read_wav(corpus / "audio" / f"{source}.wav")
        write_wav(own / "audio" / f"{name}.wav", waveform, rate)
    out = tmp_path / "predictions"
    try:
        predict.main(["--run-dir", str(run_dir), "--data-dir", str(own), "--output-dir", str(out), "--quiet"])
    except SystemExit as leave:
        pytest.fail(f"predict exited {leave.code}: {capsys.readouterr().err}")
    rows = {}
    for source, name in names.items():
        table = list(csv.reader(open(out / f"{name}.csv"), delimiter=";"))
        assert table[0] == ["name", "timestamp", "arousal", "valence", "arousal_lower", "arousal_upper"] + [
            "valence_lower",
            "valence_upper",
            "audio_present",
            "visual_present",
        ]
        assert {row[0] for row in table[1:]} == {f"'{name}'"}
        rows[source] = np.array([[float(x) for x in row[1:]] for row in table[1:]])
    np.testing.assert_array_equal(rows["Devel_SY_01"][10:20, -1], 0)
    assert rows["Devel_SY_01"][:10, -1].all() and rows["Test_SY_01"][:, -1].all()
    assert (rows["Test_SY_01"][:, 4] > rows["Test_SY_01"][:, 3]).all()  # valence_upper > valence_lower

    # The training-time path: ExampleGen's shards through the input pipeline's reader.
    model = inference_model(keras.saving.load_model(run_dir / "model.keras"))
    recording = next(input_pipeline.iter_recordings(config["runtime"]["artifact_dir"], "test"))
    assert recording["name"] == "Test_SY_01"
    reference = evaluation.predict_recordings(model, [recording])[0]["outputs"]
    np.testing.assert_allclose(rows["Test_SY_01"][:, 1], reference["arousal"], atol=1e-5)
    np.testing.assert_allclose(rows["Test_SY_01"][:, 2], reference["valence"], atol=1e-5)


@pytest.mark.slow
def test_videos_to_predictions_with_intervals_in_two_commands(raw_run, tmp_path, capsys):
    """A folder of videos and a trained run: `pipelines.extract --for-run RUN`, then `pipelines.predict`,
    give one CSV per video named after it, a row per 0.1 s, intervals, and the faceless frames marked."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from pipelines import predict
    from tests.pipelines.media.make_media import write_video

    run_dir, _ = raw_run
    media = tmp_path / "my videos"
    media.mkdir()
    write_video(media / "session 1.mp4", 3.0, face=True, seed=0)
    write_video(media / "no face here.mp4", 2.0, face=False, seed=1)
    corpus = tmp_path / "corpus"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.extract", str(media), "--output-dir", str(corpus), "--for-run", str(run_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "predictions"
    try:
        predict.main(["--run-dir", str(run_dir), "--data-dir", str(corpus), "--output-dir", str(out), "--quiet"])
    except SystemExit as leave:
        pytest.fail(f"predict exited {leave.code}: {capsys.readouterr().err}")
    assert sorted(p.name for p in out.glob("*.csv")) == ["no face here.csv", "session 1.csv"]
    for name, seconds in (("session 1", 3.0), ("no face here", 2.0)):
        table = list(csv.reader(open(out / f"{name}.csv"), delimiter=";"))
        header, rows = table[0], table[1:]
        assert header[:8] == ["name", "timestamp", "arousal", "valence"] + [
            "arousal_lower",
            "arousal_upper",
            "valence_lower",
            "valence_upper",
        ]
        assert len(rows) == round(seconds / 0.1)
        np.testing.assert_allclose([float(row[1]) for row in rows], np.arange(len(rows)) * 0.1, atol=1e-6)
        values = np.array([[float(x) for x in row[2:]] for row in rows])
        assert (values[:, 3] > values[:, 2]).all() and (values[:, 5] > values[:, 4]).all()
        present = values[:, header.index("visual_present") - 2]
        if name == "no face here":
            np.testing.assert_array_equal(present, 0)
        else:
            assert present.mean() > 0.8
