"""What TensorFlow Serving reads: Predict requests, the warmup file replayed when a model loads, and the
`models.config` that names a model's folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from pipelines.data import features
from pipelines.serving.servable import SERVING_DEFAULT, WITHOUT_MASK

WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"


def predict_request(
    model_name,
    audio,
    visual,
    mask=None,
    *,
    signature=SERVING_DEFAULT,
    version=None,
    audio_present=None,
    visual_present=None,
):
    """A TF Serving `PredictRequest` for one batch.

    Args:
        model_name: str. The model's name on the server.
        audio: float array [T, D_a] (one sequence) or [B, T, D_a].
        visual: float array [T, D_v] or [B, T, D_v].
        mask: optional float array [T] or [B, T]; left out of the request when None.
        audio_present, visual_present: optional float arrays [T] or [B, T] of presence flags
            (models trained with them); left out when None (every frame present).
        signature: str. Defaults to "serving_default".
        version: optional int. Defaults to the newest version the server has.

    Returns:
        `tensorflow_serving.apis.predict_pb2.PredictRequest`.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    audio = np.asarray(audio, np.float32)
    visual = np.asarray(visual, np.float32)
    flags = {features.MASK: mask, features.AUDIO_PRESENT: audio_present, features.VISUAL_PRESENT: visual_present}
    flags = {key: np.asarray(value, np.float32) for key, value in flags.items() if value is not None}
    if audio.ndim == 2:
        audio, visual = audio[None], visual[None]
        flags = {key: value[None] for key, value in flags.items()}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs[features.AUDIO].CopyFrom(tf.make_tensor_proto(audio))
    request.inputs[features.VISUAL].CopyFrom(tf.make_tensor_proto(visual))
    for key, value in flags.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def write_warmup_requests(path, model_name, recordings) -> int:
    """Writes TF Serving's warmup file: PredictionLog records replayed when the model loads.

    Each recording gives two requests: `serving_default` with a mask of ones and `without_mask`.
    (A request to `serving_default` without `mask` would make loading fail on a server that does
    not use SignatureDef defaults.) Returns the number of records.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, prediction_log_pb2  # noqa: F401 - model_pb2 registers types

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for recording in recordings:
            audio, visual = recording[features.AUDIO], recording[features.VISUAL]
            requests = (
                predict_request(model_name, audio, visual, np.ones(len(audio), np.float32)),
                predict_request(model_name, audio, visual, signature=WITHOUT_MASK),
            )
            for request in requests:
                log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())
                count += 1
    return count


def models_config_text(name: str, base_path) -> str:
    """A `--model_config_file` for tensorflow_model_server serving the newest version of one model."""
    return textwrap.dedent(f"""\
        model_config_list {{
          config {{
            name: "{name}"
            base_path: "{Path(base_path).resolve()}"
            model_platform: "tensorflow"
          }}
        }}
        """)
