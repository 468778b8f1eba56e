"""gRPC client of a TF Serving model exported by `pipelines.export` (`python -m pipelines.serve_client`).

Sends one Predict request per recording (one sequence, batch of 1) through tensorflow-serving-api's
`PredictionServiceStub` and prints the fused prediction and the fusion weights per recording;
`--output-dir` also writes every output per frame to `<name>.csv`.

A recording file (`--recording`) is a per-frame table with a header, separated by `;` or `,`:
`name;timestamp;audio_1;...;audio_<D_a>;visual_1;...;visual_<D_v>` — the first column is the
recording's name, the second the frame time in seconds, then the raw (unnormalised) features: every
column whose name starts with `audio` goes to the `audio` input, every column starting with
`visual` to `visual`, in file order. `write_recording_csv` writes one from a run's data artefacts.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipelines.core.errors import ColdKerasError, DataError
from pipelines.data import features
from pipelines.serving.servable import SERVING_DEFAULT
from pipelines.serving.tf_serving import predict_request

# Long recordings (AVEC: ~1800 frames x hundreds of features, more with a batch) exceed gRPC's
# 4 MiB default message size.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


def read_recording_csv(path) -> dict:
    """A recording from a per-frame feature table (format in the module docstring).

    Returns:
        dict with `name` (str), `timestamps` [N] float64, `audio` [N, D_a] and `visual` [N, D_v] float32.

    Raises:
        DataError: unreadable file, a bad value (with its line and column), or no audio/visual columns.
    """
    from pipelines.datasets.tables import read_table

    path = Path(path)
    if not path.is_file():
        raise DataError("recording file not found", path)
    table = read_table(path, text_columns=1, header=True, min_numeric_columns=3)
    columns = table.header[1:]
    if len(columns) != table.values.shape[1]:
        raise DataError(f"the header has {len(columns) + 1} columns, the rows {table.values.shape[1] + 1}", path, 1)
    picks = {
        key: [i for i, c in enumerate(columns) if i > 0 and c.lower().startswith(key)] for key in features.MODALITIES
    }
    for key, idx in picks.items():
        if not idx:
            raise DataError(
                f"no {key} feature columns: the header needs columns named {key}_1, {key}_2, ... "
                f"after `name` and `timestamp`",
                path,
                1,
            )
    names = {str(v).strip().strip("'\"") for v in table.text[0]}
    return {
        "name": names.pop() if len(names) == 1 else path.stem,
        "timestamps": table.values[:, 0],
        features.AUDIO: table.values[:, picks[features.AUDIO]].astype(np.float32),
        features.VISUAL: table.values[:, picks[features.VISUAL]].astype(np.float32),
    }


def write_recording_csv(recording: dict, path) -> Path:
    """Writes a recording (a dict of `iter_recordings`) in the format `read_recording_csv` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.asarray(recording[features.AUDIO])
    visual = np.asarray(recording[features.VISUAL])
    timestamps = recording.get("timestamps")
    if timestamps is None:
        timestamps = np.arange(len(audio)) * float(recording.get("hop", 0.1))
    header = (
        ["name", "timestamp"]
        + [f"audio_{i + 1}" for i in range(audio.shape[1])]
        + [f"visual_{i + 1}" for i in range(visual.shape[1])]
    )
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        for t, a, v in zip(timestamps, audio, visual):
            writer.writerow(
                [recording["name"], repr(float(t))] + [repr(float(x)) for x in a] + [repr(float(x)) for x in v]
            )
    return path


def build_request(model_name, recording, *, signature=SERVING_DEFAULT, version=None, with_mask=True):
    """The PredictRequest for one recording: batch of 1, a mask of ones unless `with_mask` is False
    (always without a mask for the `without_mask` signature), and the recording's presence flags
    (`audio_present` / `visual_present`) when it has them. A model exported without the flags
    takes recordings without them."""
    audio = np.asarray(recording[features.AUDIO], np.float32)
    visual = np.asarray(recording[features.VISUAL], np.float32)
    if len(audio) != len(visual):
        raise DataError(
            f"recording {recording.get('name')!r}: {len(audio)} audio frames but {len(visual)} visual frames"
        )
    mask = np.ones(len(audio), np.float32) if with_mask and signature == SERVING_DEFAULT else None
    flags = {}
    if signature == SERVING_DEFAULT:  # the corpus's presence flags, when the recording has them
        flags = {
            key: np.asarray(recording[key], np.float32)
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
            if recording.get(key) is not None
        }
    return predict_request(model_name, audio, visual, mask, signature=signature, version=version, **flags)


def connect(server: str):
    """A PredictionServiceStub on an insecure channel with large message limits, and the channel."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server, options=CHANNEL_OPTIONS)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), channel


def predict(stub, request, timeout=60.0) -> dict:
    """Sends one request; returns the outputs as float32 NumPy arrays without the batch axis."""
    import grpc
    import tensorflow as tf

    try:
        response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
        raise ColdKerasError(f"Predict failed ({error.code().name}): {error.details()}") from None
    return {name: tf.make_ndarray(proto).astype(np.float32)[0] for name, proto in response.outputs.items()}


def recordings_from_args(args):
    if args.recording:
        return [read_recording_csv(path) for path in args.recording]
    from pipelines.components.input_pipeline import iter_recordings
    from pipelines.config.settings import resolve_saved
    from pipelines.core.io_utils import read_json
    from pipelines.runs.folders import artifact_dir_of

    config_path = Path(args.run_dir) / "config.json"
    if not config_path.is_file():
        raise DataError("not found: not a run directory", config_path)
    artifact_dir = artifact_dir_of(resolve_saved(read_json(config_path), config_path), args.run_dir)
    out = []
    for recording in iter_recordings(artifact_dir, args.partition):
        out.append(recording)
        if args.max_recordings and len(out) >= args.max_recordings:
            break
    return out


def write_outputs_csv(path, recording, outputs) -> None:
    names = sorted(name for name, value in outputs.items() if np.ndim(value) == 1)
    timestamps = recording.get("timestamps")
    n = len(recording[features.AUDIO])
    if timestamps is None:
        timestamps = np.arange(n) * float(recording.get("hop", 0.1))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["name", "timestamp"] + names)
        for i in range(n):
            writer.writerow(
                [recording["name"], f"{float(timestamps[i]):.6f}"] + [f"{float(outputs[k][i]):.6f}" for k in names]
            )


def run(args) -> list:
    """Predicts every recording through the server; returns a list of (recording, outputs)."""
    recordings = recordings_from_args(args)
    if not recordings:
        raise DataError(f"no recordings in partition {args.partition!r}", args.run_dir)
    stub, channel = connect(args.server)
    results = []
    try:
        for recording in recordings:
            request = build_request(args.model, recording, signature=args.signature, version=args.version)
            results.append((recording, predict(stub, request, timeout=args.timeout)))
    finally:
        channel.close()
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    print(f"{'recording':<24} {'frames':>7} {'valence':>8} {'arousal':>8} {'w_audio':>8} {'w_visual':>8}")
    for recording, outputs in results:

        def mean(key):
            value = outputs.get(key)
            return f"{float(np.mean(value)):8.3f}" if value is not None and np.ndim(value) == 1 else f"{'-':>8}"

        print(
            f"{recording['name']:<24} {len(recording[features.AUDIO]):>7} {mean(features.VALENCE)} "
            f"{mean(features.AROUSAL)} {mean('audio_weight')} {mean('visual_weight')}"
        )
        if args.output_dir:
            write_outputs_csv(Path(args.output_dir) / f"{recording['name']}.csv", recording, outputs)
    return results
