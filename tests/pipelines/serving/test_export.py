"""Tests of `pipelines.export`: SavedModel round trip, versions, crash safety, TF Serving files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.components.input_pipeline import iter_recordings
from pipelines.core.errors import ColdKerasError, ConfigError, DataError
from pipelines.core.io_utils import read_json
from pipelines.data import features
from pipelines.runs import folders as runs
from pipelines.serving import export, export_check, servable, tf_serving, versions
from tests.pipelines.serving_helpers import MODEL_NAME

REPO = Path(__file__).resolve().parents[3]
COLD_OUTPUTS = {
    "valence",
    "arousal",
    "audio_valence",
    "audio_arousal",
    "visual_valence",
    "visual_arousal",
    "audio_weight",
    "visual_weight",
    "audio_sigma_norm",
    "visual_sigma_norm",
}
# The calibrated per-frame std the trainer's uncertainty calibration adds to the export, per branch.
STD_OUTPUTS = {f"{branch}{dim}_std" for branch in ("", "audio_", "visual_") for dim in ("valence", "arousal")}
# The bounds of the trainer's conformal intervals (90%), computed in the graph.
BOUND_OUTPUTS = {
    f"{branch}{dim}_{side}"
    for branch in ("", "audio_", "visual_")
    for dim in ("valence", "arousal")
    for side in ("lower", "upper")
}
EXPORTED_OUTPUTS = COLD_OUTPUTS | STD_OUTPUTS | BOUND_OUTPUTS


@pytest.fixture(scope="session")
def inference(run_dir):
    model, config = runs.load_inference_model(run_dir)
    return model, config


def devel_recordings(run_dir):
    artifact_dir = read_json(Path(run_dir) / "config.json")["runtime"]["artifact_dir"]
    return list(iter_recordings(artifact_dir, features.DEVEL))


# Independent of pipelines.export: plain TensorFlow in a fresh interpreter, outside the repository.
ROUND_TRIP = r"""
import sys
import numpy as np
import tensorflow as tf
export_dir, inputs, outputs = sys.argv[1:4]
data = np.load(inputs)
fn = tf.saved_model.load(export_dir).signatures["serving_default"]
out = fn(**{key: tf.constant(data[key]) for key in data.files})
np.savez(outputs, **{k: v.numpy() for k, v in out.items()})
print(sorted(m for m in sys.modules if m.split(".")[0] in ("cold_keras", "pipelines")))
"""


@pytest.mark.slow
def test_round_trip_in_plain_tensorflow_matches_keras(exported, inference, run_dir, tmp_path):
    model, _ = inference
    recordings = devel_recordings(run_dir)
    # A padded batch of two recordings of different lengths, so the mask is not all ones.
    a, b = recordings[0], recordings[1]
    n_b = len(b["audio"]) // 2
    t = max(len(a["audio"]), n_b)
    audio = np.zeros((2, t, a["audio"].shape[1]), np.float32)
    visual = np.zeros((2, t, a["visual"].shape[1]), np.float32)
    mask = np.zeros((2, t), np.float32)
    audio[0, : len(a["audio"])], visual[0, : len(a["audio"])], mask[0, : len(a["audio"])] = a["audio"], a["visual"], 1
    audio[1, :n_b], visual[1, :n_b], mask[1, :n_b] = b["audio"][:n_b], b["visual"][:n_b], 1
    # The visual modality is absent on a stretch of the first sequence.
    audio_present, visual_present = mask.copy(), mask.copy()
    visual_present[0, 2:6] = 0.0
    inputs = dict(audio=audio, visual=visual, mask=mask, audio_present=audio_present, visual_present=visual_present)
    np.savez(tmp_path / "in.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, str(exported), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # nothing of the project was imported
    served = dict(np.load(tmp_path / "out.npz"))
    expected = {name: np.asarray(value) for name, value in model.predict_on_batch(inputs).items()}
    assert set(expected) == COLD_OUTPUTS and set(served) == EXPORTED_OUTPUTS
    # The std outputs: the run's calibration (fitted by the trainer) applied to the Keras outputs.
    from pipelines.evaluation import uncertainty

    stds = uncertainty.Calibration.load(run_dir).std(expected)
    expected.update({name: np.reshape(value, (2, t)) for name, value in stds.items()})
    for name in EXPORTED_OUTPUTS - BOUND_OUTPUTS:
        assert served[name].shape == (2, t)
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, rtol=0, err_msg=name)
    # The bounds: the NumPy conformal calibration on each sequence's real frames (absent visual stretch included).
    from pipelines.evaluation import conformal

    calibration = conformal.load(run_dir)
    for row, n in enumerate(mask.sum(axis=1).astype(int)):
        outputs = {k: v[row, :n] for k, v in expected.items() if k in COLD_OUTPUTS}
        outputs.update(audio_present=audio_present[row, :n], visual_present=visual_present[row, :n])
        bounds = {k: v for k, v in calibration.bounds(outputs).items() if k in BOUND_OUTPUTS}
        assert set(bounds) == BOUND_OUTPUTS
        for name, value in bounds.items():
            assert served[name].shape == (2, t)
            np.testing.assert_allclose(served[name][row, :n], value, atol=1e-5, rtol=0, err_msg=name)
    # The weights are a convex pair and the sigma norms positive on real frames.
    real = mask == 1
    np.testing.assert_allclose(served["audio_weight"][real] + served["visual_weight"][real], 1.0, atol=1e-6)
    assert (served["audio_sigma_norm"][real] > 0).all()
    assert (served["visual_weight"][0, 2:6] == 0.0).all() and (served["audio_weight"][0, 2:6] == 1.0).all()
    assert (served["visual_weight"][real & (visual_present == 1)] > 0.0).all()


@pytest.mark.slow
def test_signatures_and_optional_mask(exported, inference, run_dir):
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((exported / "saved_model.pb").read_bytes())
    signatures = proto.meta_graphs[0].signature_def
    assert set(servable.SIGNATURES) <= set(signatures)
    default = signatures["serving_default"]
    assert set(default.inputs) == {"audio", "visual", "mask", "audio_present", "visual_present"}
    assert set(signatures["without_mask"].inputs) == {"audio", "visual"}
    assert set(default.outputs) == EXPORTED_OUTPUTS == set(signatures["without_mask"].outputs)
    dims = servable.feature_dims(inference[0])
    shape = [d.size for d in default.inputs["audio"].tensor_shape.dim]
    assert shape == [-1, -1, dims["audio"]]
    assert [d.size for d in default.inputs["mask"].tensor_shape.dim] == [-1, -1]
    # TF Serving feeds these when a request leaves them out: empty tensors, read as "all frames
    # real" and "every modality present".
    assert set(default.defaults) == {"mask", "audio_present", "visual_present"}
    for key in default.defaults:
        assert tf.make_ndarray(default.defaults[key]).shape == (0, 0)

    loaded = tf.saved_model.load(str(exported))
    recording = devel_recordings(run_dir)[0]
    audio, visual = recording["audio"][None], recording["visual"][None]
    ones = np.ones(audio.shape[:2], np.float32)
    with_mask = loaded.signatures["serving_default"](
        audio=audio, visual=visual, mask=ones, audio_present=ones, visual_present=ones
    )
    fed_default = loaded.signatures["serving_default"](
        audio=audio, visual=visual, **{key: tf.make_ndarray(value) for key, value in default.defaults.items()}
    )
    without = loaded.signatures["without_mask"](audio=audio, visual=visual)
    for name in EXPORTED_OUTPUTS:
        np.testing.assert_allclose(fed_default[name].numpy(), with_mask[name].numpy(), atol=1e-6)
        np.testing.assert_allclose(without[name].numpy(), with_mask[name].numpy(), atol=1e-6)
    listing = export_check.show_signature(exported)
    for key in ("audio", "visual", "mask", "audio_present", "visual_present", "visual_weight", "audio_sigma_norm"):
        assert f"['{key}']" in listing


@pytest.mark.slow
def test_warmup_file_holds_real_requests(exported, run_dir):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported / "assets.extra" / "tf_serving_warmup_requests"
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]
    recordings = devel_recordings(run_dir)
    assert len(logs) == 2 * len(recordings)
    for i, log in enumerate(logs):
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        recording = recordings[i // 2]
        assert request.model_spec.name == MODEL_NAME
        expected_signature = "serving_default" if i % 2 == 0 else "without_mask"
        assert request.model_spec.signature_name == expected_signature
        np.testing.assert_array_equal(tf.make_ndarray(request.inputs["audio"]), recording["audio"][None])
        np.testing.assert_array_equal(tf.make_ndarray(request.inputs["visual"]), recording["visual"][None])
        if expected_signature == "serving_default":
            np.testing.assert_array_equal(
                tf.make_ndarray(request.inputs["mask"]), np.ones((1, len(recording["audio"])), np.float32)
            )
        else:
            assert set(request.inputs) == {"audio", "visual"}


@pytest.mark.slow
def test_models_config_names_the_model_folder(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (exported.parent / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    [entry] = config.model_config_list.config
    assert entry.name == MODEL_NAME
    assert Path(entry.base_path) == exported.parent.resolve()
    assert entry.model_platform == "tensorflow"


@pytest.mark.slow
def test_version_numbering(run_dir, tmp_path, monkeypatch):
    # Numbering does not depend on the SavedModel's content: a stand-in writer keeps the test fast.
    def stand_in(model, path):
        (Path(path) / "saved_model.pb").write_bytes(b"")

    monkeypatch.setattr(servable, "save_saved_model", stand_in)
    base = tmp_path / "models"
    first = export.run(run_dir, "m", base_dir=base, verify=False, warmup_recordings=1)
    seventh = export.run(run_dir, "m", version=7, base_dir=base, verify=False, warmup_recordings=1)
    eighth = export.run(run_dir, "m", base_dir=base, verify=False, warmup_recordings=1)
    third = export.run(run_dir, "m", version=3, base_dir=base, verify=False, warmup_recordings=1)
    assert [p.name for p in (first, seventh, eighth, third)] == ["1", "7", "8", "3"]
    assert versions.existing_versions(base / "m") == [1, 3, 7, 8]
    assert sorted(p.name for p in (base / "m").iterdir()) == ["1", "3", "7", "8", "models.config"]
    assert (eighth / "assets.extra" / "tf_serving_warmup_requests").is_file()
    with pytest.raises(ConfigError, match="version 7 already exists; .* use 9"):
        export.run(run_dir, "m", version=7, base_dir=base)
    with pytest.raises(ConfigError, match="positive"):
        export.run(run_dir, "m", version=0, base_dir=base)


@pytest.mark.slow
def test_cli_refuses_an_existing_version_in_one_line(exported):
    base = exported.parent.parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.export",
            "--run-dir",
            "unused",
            "--name",
            MODEL_NAME,
            "--version",
            exported.name,
            "--base-dir",
            str(base),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {exported}: version {exported.name} already exists; pass another --version or "
        f"leave it out to use {int(exported.name) + 1}"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_failed_export_leaves_nothing(run_dir, tmp_path, monkeypatch):
    base = tmp_path / "models"
    export.run(run_dir, "m", base_dir=base, verify=False, warmup_recordings=1)
    config_before = (base / "m" / "models.config").read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf_serving, "write_warmup_requests", broken)
    with pytest.raises(OSError, match="disk full"):
        export.run(run_dir, "m", base_dir=base, warmup_recordings=1)
    assert sorted(p.name for p in (base / "m").iterdir()) == ["1", "models.config"]
    assert (base / "m" / "models.config").read_text() == config_before
    assert versions.next_version(base / "m") == 2


@pytest.mark.slow
def test_verification_rejects_a_different_model(run_dir, tmp_path, monkeypatch):
    """The check can fail: a SavedModel saved from moved weights does not match the Keras model,
    and run() then publishes no version."""
    base = tmp_path / "models"
    real_save = servable.save_saved_model

    def save_moved(model, path):
        weight = next(w for w in model.weights if "kernel" in w.path)
        original = weight.numpy()
        weight.assign(original + 0.5)
        try:
            real_save(model, path)
        finally:
            weight.assign(original)

    monkeypatch.setattr(servable, "save_saved_model", save_moved)
    with pytest.raises(ColdKerasError, match="differs from the Keras model"):
        export.run(run_dir, "m", base_dir=base, warmup_recordings=2)
    assert list((base / "m").iterdir()) == []


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="model name"):
        export.run(tmp_path, "a/b", base_dir=tmp_path / "models")
    with pytest.raises(DataError, match="run directory not found"):
        export.run(tmp_path / "missing", "m", base_dir=tmp_path / "models")
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError) as info:
        export.run(tmp_path / "run", "m", base_dir=tmp_path / "models")
    assert info.value.path == str(tmp_path / "run" / "config.json")
    assert not (tmp_path / "models").exists()


def test_next_version_ignores_other_folders(tmp_path):
    root = tmp_path / "m"
    assert versions.next_version(root) == 1
    for name in ("3", "10", ".tmp-export-11-x", "notes", "2"):
        (root / name).mkdir(parents=True)
    (root / "12").write_text("a file, not a version")
    assert versions.existing_versions(root) == [2, 3, 10]
    assert versions.next_version(root) == 11


def test_models_config_text_parses():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(
        tf_serving.models_config_text("x", "/srv/models/x"), model_server_config_pb2.ModelServerConfig()
    )
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [("x", "/srv/models/x")]
