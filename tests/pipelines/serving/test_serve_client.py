"""Tests of `pipelines.serve_client`: the requests it builds, the recording CSV format, and a gRPC
round trip against a small in-process PredictionService that runs the exported SavedModel."""

from __future__ import annotations

import csv
import threading
from concurrent import futures
from pathlib import Path

import numpy as np
import pytest

from pipelines import serve_client as serve_client_command
from pipelines.components.input_pipeline import iter_recordings
from pipelines.core.errors import ColdKerasError, DataError
from pipelines.core.io_utils import read_json
from pipelines.serving import client as serve_client
from tests.pipelines.serving_helpers import MODEL_NAME, tiny_export, tiny_run


def fake_recording(n=6, da=3, dv=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "name": "rec_01",
        "audio": rng.normal(size=(n, da)).astype(np.float32),
        "visual": rng.normal(size=(n, dv)).astype(np.float32),
        "timestamps": np.arange(n) * 0.1,
    }


def test_build_request_carries_the_tensors():
    import tensorflow as tf

    recording = fake_recording()
    request = serve_client.build_request("cold", recording, version=4)
    assert request.model_spec.name == "cold"
    assert request.model_spec.signature_name == "serving_default"
    assert request.model_spec.version.value == 4
    assert set(request.inputs) == {"audio", "visual", "mask"}
    for key in ("audio", "visual"):
        assert request.inputs[key].dtype == tf.float32.as_datatype_enum
        np.testing.assert_array_equal(tf.make_ndarray(request.inputs[key]), recording[key][None])
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["mask"]), np.ones((1, 6), np.float32))

    without = serve_client.build_request("cold", recording, signature="without_mask")
    assert without.model_spec.signature_name == "without_mask"
    assert not without.model_spec.HasField("version")
    assert set(without.inputs) == {"audio", "visual"}
    assert set(serve_client.build_request("cold", recording, with_mask=False).inputs) == {"audio", "visual"}

    short = dict(recording, visual=recording["visual"][:4])
    with pytest.raises(DataError, match="6 audio frames but 4 visual frames"):
        serve_client.build_request("cold", short)


def test_recording_csv_round_trip(tmp_path):
    recording = fake_recording(n=5, da=2, dv=3, seed=1)
    path = serve_client.write_recording_csv(recording, tmp_path / "rec.csv")
    header = next(csv.reader(open(path), delimiter=";"))
    assert header == ["name", "timestamp", "audio_1", "audio_2", "visual_1", "visual_2", "visual_3"]
    back = serve_client.read_recording_csv(path)
    assert back["name"] == "rec_01"
    np.testing.assert_array_equal(back["audio"], recording["audio"])
    np.testing.assert_array_equal(back["visual"], recording["visual"])
    np.testing.assert_allclose(back["timestamps"], recording["timestamps"])


def test_recording_csv_errors_name_the_place(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name;timestamp;audio_1;visual_1\nr;0.0;1.5;2.0\nr;0.1;oops;2.0\n")
    with pytest.raises(DataError) as info:
        serve_client.read_recording_csv(bad)
    assert (info.value.path, info.value.line, info.value.column) == (str(bad), 3, 3)

    no_visual = tmp_path / "no_visual.csv"
    no_visual.write_text("name;timestamp;audio_1;audio_2\nr;0.0;1.5;2.0\n")
    with pytest.raises(DataError, match="no visual feature columns") as info:
        serve_client.read_recording_csv(no_visual)
    assert info.value.line == 1
    with pytest.raises(DataError, match="not found"):
        serve_client.read_recording_csv(tmp_path / "missing.csv")


class SavedModelPredictionService:
    """PredictionService.Predict the way TF Serving answers it, for one SavedModel folder:
    model name check, signature by name, missing inputs filled from the SignatureDef's defaults."""

    def __init__(self, name, export_dir):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
        self.signature_defs = proto.meta_graphs[0].signature_def
        self.loaded = tf.saved_model.load(str(export_dir))
        self.name = name
        self.version = int(Path(export_dir).name)
        self.requests = []

        service = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                return service.predict(request, context)

        self.servicer = Servicer()

    def predict(self, request, context):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        self.requests.append(request)
        if request.model_spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request.model_spec.name}")
        signature = request.model_spec.signature_name or "serving_default"
        if signature not in self.signature_defs:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Serving signature name: {signature} not found")
        definition = self.signature_defs[signature]
        inputs = {}
        for alias in definition.inputs:
            if alias in request.inputs:
                inputs[alias] = tf.make_ndarray(request.inputs[alias])
            elif alias in definition.defaults:
                inputs[alias] = tf.make_ndarray(definition.defaults[alias])
            else:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input {alias} missing, no default")
        outputs = self.loaded.signatures[signature](**inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.signature_name = signature
        response.model_spec.version.value = self.version
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    root = tmp_path_factory.mktemp("serving")
    run_dir = tiny_run(root)
    export_dir = tiny_export(root)
    service = SavedModelPredictionService(MODEL_NAME, export_dir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=serve_client.CHANNEL_OPTIONS)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # Bounded: the server stops itself even if the test process hangs.
    watchdog = threading.Timer(300, server.stop, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield {"address": f"127.0.0.1:{port}", "service": service, "run_dir": run_dir, "export": export_dir}
    finally:
        watchdog.cancel()
        server.stop(0).wait(10)


def keras_reference(run_dir, recording):
    from pipelines.runs import folders as runs
    from pipelines.serving import servable

    model, _ = runs.load_inference_model(run_dir)
    audio, visual = recording["audio"][None], recording["visual"][None]
    outputs = servable.keras_outputs(model, audio, visual, np.ones(audio.shape[:2], np.float32))
    outputs = {k: np.asarray(v[0]) for k, v in outputs.items()}
    # The export carries the calibrated std of the run's uncertainty calibration and the bounds of its
    # conformal intervals (the trainer fits both), here from their NumPy implementations.
    from pipelines.evaluation import conformal, uncertainty

    bounds = {k: v for k, v in conformal.load(run_dir).bounds(outputs).items() if k.endswith(("_lower", "_upper"))}
    return {**outputs, **uncertainty.Calibration.load(run_dir).std(outputs), **bounds}


@pytest.mark.slow
def test_client_round_trip_over_grpc(served, tmp_path, capsys):
    run_dir = served["run_dir"]
    artifact_dir = read_json(Path(run_dir) / "config.json")["runtime"]["artifact_dir"]
    recordings = list(iter_recordings(artifact_dir, "devel"))
    args = serve_client_command.parse_args(
        [
            "--server",
            served["address"],
            "--model",
            MODEL_NAME,
            "--run-dir",
            str(run_dir),
            "--partition",
            "devel",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    results = serve_client.run(args)
    assert [r["name"] for r, _ in results] == [r["name"] for r in recordings]
    expected = keras_reference(run_dir, recordings[0])
    outputs = results[0][1]
    assert set(outputs) == set(expected)
    for name in expected:
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5, rtol=0, err_msg=name)
    # Every request reached the server with the tensors of its recording.
    import tensorflow as tf

    request = served["service"].requests[-len(recordings)]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["audio"]), recordings[0]["audio"][None])
    # The per-frame CSV holds the same numbers.
    rows = list(csv.reader(open(tmp_path / "out" / f"{recordings[0]['name']}.csv"), delimiter=";"))
    column = rows[0].index("visual_weight")
    np.testing.assert_allclose([float(r[column]) for r in rows[1:]], expected["visual_weight"], atol=1e-6)
    assert recordings[0]["name"] in capsys.readouterr().out


@pytest.mark.slow
def test_client_recording_csv_and_default_mask(served, tmp_path):
    run_dir = served["run_dir"]
    artifact_dir = read_json(Path(run_dir) / "config.json")["runtime"]["artifact_dir"]
    recording = next(iter(iter_recordings(artifact_dir, "devel")))
    path = serve_client.write_recording_csv(recording, tmp_path / "one.csv")
    expected = keras_reference(run_dir, recording)
    stub, channel = serve_client.connect(served["address"])
    try:
        for signature, with_mask in (("serving_default", False), ("without_mask", False)):
            request = serve_client.build_request(
                MODEL_NAME, serve_client.read_recording_csv(path), signature=signature, with_mask=with_mask
            )
            assert "mask" not in request.inputs
            outputs = serve_client.predict(stub, request)
            for name in expected:
                np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5, rtol=0, err_msg=name)
        wrong = serve_client.build_request("no_such_model", recording)
        with pytest.raises(ColdKerasError, match="NOT_FOUND"):
            serve_client.predict(stub, wrong)
    finally:
        channel.close()
