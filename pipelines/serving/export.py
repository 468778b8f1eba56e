"""Exporter: `python -m pipelines.export --run-dir RUN --name NAME [--version N] [--base-dir saved_models]`.

Writes the trained model of a run directory as a TF Serving SavedModel:

    <base-dir>/<NAME>/models.config                  model_config_list for tensorflow_model_server
    <base-dir>/<NAME>/<N>/saved_model.pb, variables/
    <base-dir>/<NAME>/<N>/assets.extra/tf_serving_warmup_requests
    <base-dir>/<NAME>/<N>/assets.extra/config.json   the run's config (read by pipelines.predict)

Signatures (both take float32 tensors, batch and time axes of any size):

* `serving_default`: `audio` [B, T, D_a], `visual` [B, T, D_v] and `mask` [B, T] (1 = real frame).
  `mask` is optional: the SignatureDef carries a default (an empty [0, 0] tensor, read as "every
  frame is real") that TensorFlow Serving feeds when a request leaves `mask` out.
  Models with presence flags also take `audio_present` and `visual_present` [B, T] (1 = the
  modality's features are real on that frame), optional in the same way (default: all present).
  An absent modality gets a fusion weight of exactly 0 and its features there change nothing.
* `without_mask`: `audio` and `visual` only, for clients and servers that do not use SignatureDef
  defaults (a SavedModel loaded in Python with `tf.saved_model.load` requires every input of a
  signature, so `serving_default` must get `mask` and the flags there).

Outputs: a dict of float32 tensors with the inference model's names: `valence`, `arousal` (fused),
`audio_valence`, ..., `visual_arousal` (unimodal branches) and, for COLD fusion, `audio_weight`,
`visual_weight`, `audio_sigma_norm`, `visual_sigma_norm`, all [B, T] ([B, T, 3] logits for
classification). The normalisation statistics are part of the model.
When the run directory holds an uncertainty calibration (`uncertainty_calibration.json`, written by
`python -m pipelines.uncertainty --run-dir RUN` or by evaluating the run), the outputs also include the
calibrated per-frame std in label units: `valence_std`, `arousal_std` and per branch
(`audio_valence_std`, ...), computed in the graph from the sigma norms and fusion weights.

The version is written to a hidden temporary folder next to the version folders, checked (a fresh
Python process with plain TensorFlow loads it and must reproduce the Keras model's outputs on real
recordings to 1e-5; `saved_model_cli` must list the signature) and only then renamed to `<N>`, so
TF Serving, which polls the folder, never sees a partial or unchecked version.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import ColdKerasError, ConfigError, DataError, cli_main
from pipelines.core.io_utils import make_readable, read_json, write_json_atomic, write_text_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.runs.folders import artifact_dir_of, load_inference_model

SERVING_DEFAULT = "serving_default"
WITHOUT_MASK = "without_mask"
SIGNATURES = (SERVING_DEFAULT, WITHOUT_MASK)
WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
TOLERANCE = 1e-5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TMP_PREFIX = ".tmp-export-"


# --------------------------------------------------------------------------- model


def sample_recordings(artifact_dir, count: int, partitions=(features.DEVEL, features.TEST, features.TRAIN)):
    """Up to `count` whole recordings from the first of `partitions` that the artefacts hold."""
    from pipelines.components import input_pipeline

    manifest = read_json(Path(artifact_dir) / "manifest.json")
    for partition in partitions:
        if partition in manifest["partitions"]:
            out = []
            for recording in input_pipeline.iter_recordings(artifact_dir, partition):
                out.append(recording)
                if len(out) >= count:
                    break
            if out:
                return out
    raise DataError("no recordings in the run's data artefacts", Path(artifact_dir) / "manifest.json")


def _has_presence_inputs(model) -> bool:
    # Imported here: the CLI checks its arguments before TensorFlow is loaded.
    from pipelines.evaluation.scoring import has_presence_inputs

    return has_presence_inputs(model)


def feature_dims(model) -> dict:
    """{"audio": D_a, "visual": D_v} from the inference model's input layers."""
    dims = {}
    for key in features.MODALITIES:
        shape = model.get_layer(key).output.shape
        dims[key] = int(shape[-1])
    return dims


def _servable(model):
    """A tf.Module holding the model and the two serving functions.

    `keras.export.ExportArchive.write_out` hands concrete functions to `tf.saved_model.save`,
    which drops the tensor default that makes `mask` optional in the SignatureDef; saving the
    polymorphic `tf.function` directly keeps it (TensorFlow writes it to `SignatureDef.defaults`
    and as a `placeholder_with_default` in the serving graph). The TensorSpec names keep the
    input names.
    """
    import tensorflow as tf

    dims = feature_dims(model)
    audio_spec = tf.TensorSpec([None, None, dims[features.AUDIO]], tf.float32, name=features.AUDIO)
    visual_spec = tf.TensorSpec([None, None, dims[features.VISUAL]], tf.float32, name=features.VISUAL)
    mask_spec = tf.TensorSpec([None, None], tf.float32, name=features.MASK)
    has_presence = _has_presence_inputs(model)

    def all_frames(audio):
        return tf.ones(tf.shape(audio)[:2], tf.float32)

    def predict(audio, visual, mask, audio_present=None, visual_present=None):
        inputs = {features.AUDIO: audio, features.VISUAL: visual, features.MASK: mask}
        if has_presence:
            inputs[features.AUDIO_PRESENT] = all_frames(audio) if audio_present is None else audio_present
            inputs[features.VISUAL_PRESENT] = all_frames(audio) if visual_present is None else visual_present
        outputs = model(inputs, training=False)
        # A model trained under mixed_float16 still serves float32.
        return {name: tf.cast(value, tf.float32) for name, value in outputs.items()}

    def or_all_frames(value, audio):
        # An empty tensor (the signature's default) means every frame is real / present.
        return tf.cond(tf.size(value) > 0, lambda: value, lambda: all_frames(audio))

    module = tf.Module()
    module.model = model
    empty = tf.zeros([0, 0], tf.float32)

    if has_presence:
        flag_specs = [
            tf.TensorSpec([None, None], tf.float32, name=key)
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        ]

        @tf.function(input_signature=[audio_spec, visual_spec, mask_spec] + flag_specs)
        def serve(audio, visual, mask=empty, audio_present=empty, visual_present=empty):
            return predict(
                audio,
                visual,
                or_all_frames(mask, audio),
                or_all_frames(audio_present, audio),
                or_all_frames(visual_present, audio),
            )
    else:

        @tf.function(input_signature=[audio_spec, visual_spec, mask_spec])
        def serve(audio, visual, mask=empty):
            return predict(audio, visual, or_all_frames(mask, audio))

    @tf.function(input_signature=[audio_spec, visual_spec])
    def serve_without_mask(audio, visual):
        return predict(audio, visual, all_frames(audio))

    module.serve = serve
    module.serve_without_mask = serve_without_mask
    return module


def save_saved_model(model, path) -> None:
    """Writes `model` (an inference model) as a SavedModel with the two serving signatures."""
    import tensorflow as tf

    module = _servable(model)
    tf.saved_model.save(
        module, str(path), signatures={SERVING_DEFAULT: module.serve, WITHOUT_MASK: module.serve_without_mask}
    )


def keras_outputs(model, audio, visual, mask, audio_present=None, visual_present=None) -> dict:
    """The Keras inference model's outputs on one batch, as float32 NumPy."""
    from pipelines.evaluation.scoring import model_inputs

    outputs = model.predict_on_batch(model_inputs(model, audio, visual, mask, audio_present, visual_present))
    return {name: np.asarray(value, np.float32) for name, value in outputs.items()}


# --------------------------------------------------------------------------- requests


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


# --------------------------------------------------------------------------- verification

# Runs in a fresh interpreter: plain TensorFlow, nothing from this project.
_VERIFY_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

export_dir, inputs_path, outputs_path = sys.argv[1:4]
proto = saved_model_pb2.SavedModel()
with open(export_dir + "/saved_model.pb", "rb") as handle:
    proto.ParseFromString(handle.read())
signature_defs = proto.meta_graphs[0].signature_def
loaded = tf.saved_model.load(export_dir)
data = np.load(inputs_path)
results = {}
signature_inputs = set(signature_defs["serving_default"].inputs)
for case in sorted({key.split("/")[0] for key in data.files}):
    given = {name: tf.constant(data[case + "/" + name]) for name in
             ("audio", "visual", "mask", "audio_present", "visual_present") if name in signature_inputs}
    runs = {
        "serving_default": loaded.signatures["serving_default"](**given),
        "without_mask": loaded.signatures["without_mask"](audio=given["audio"], visual=given["visual"]),
    }
    # What TF Serving does for a request without `mask` (or flags): feed the SignatureDef's defaults.
    defaults = signature_defs["serving_default"].defaults
    if "mask" in defaults:
        runs["default_mask"] = loaded.signatures["serving_default"](
            audio=given["audio"], visual=given["visual"],
            **{name: tf.constant(tf.make_ndarray(value)) for name, value in defaults.items()})
    for run, outputs in runs.items():
        for name, value in outputs.items():
            results[case + "/" + run + "/" + name] = value.numpy()
np.savez(outputs_path, **results)
assert "cold_keras" not in sys.modules and "pipelines" not in sys.modules, "the project was imported"
print("plain TensorFlow", tf.__version__, "ran", len(results), "outputs; defaults:", sorted(defaults))
"""


def saved_model_cli_command() -> list:
    """`saved_model_cli` (installed with TensorFlow), or the same tool run as a module."""
    found = shutil.which("saved_model_cli")
    return [found] if found else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _clean_env() -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def show_signature(export_dir, signature=SERVING_DEFAULT, timeout=300) -> str:
    """The output of `saved_model_cli show --dir ... --tag_set serve --signature_def <signature>`."""
    command = saved_model_cli_command() + [
        "show",
        "--dir",
        str(export_dir),
        "--tag_set",
        "serve",
        "--signature_def",
        signature,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    if result.returncode != 0:
        raise ColdKerasError(f"saved_model_cli failed: {result.stderr.strip().splitlines()[-1:]}", export_dir)
    return result.stdout


def verification_cases(recordings, max_cases: int = 3) -> dict:
    """Inputs to check, as (audio, visual, mask, audio_present, visual_present): each recording
    alone (mask and flags of ones), the first one with the visual modality absent on its middle
    third, and, given two, a zero-padded batch of both."""
    cases = {}
    for i, recording in enumerate(recordings[:max_cases]):
        audio = np.asarray(recording[features.AUDIO], np.float32)[None]
        visual = np.asarray(recording[features.VISUAL], np.float32)[None]
        ones = np.ones(audio.shape[:2], np.float32)
        cases[f"recording{i}"] = (audio, visual, ones, ones, ones)
        if i == 0:
            absent = ones.copy()
            t = absent.shape[1]
            absent[:, t // 3 : 2 * t // 3] = 0.0
            cases["visual_absent"] = (audio, visual, ones, ones, absent)
    if len(recordings) >= 2:
        first, second = recordings[0], recordings[1]
        # Drop frames from the second so that the batch needs padding and the mask matters.
        second_len = max(1, len(second[features.AUDIO]) * 2 // 3)
        lengths = [len(first[features.AUDIO]), second_len]
        t = max(lengths)
        batch = {}
        for key in features.MODALITIES:
            rows = [np.asarray(first[key], np.float32), np.asarray(second[key], np.float32)[:second_len]]
            batch[key] = np.stack([np.pad(r, ((0, t - len(r)), (0, 0))) for r in rows])
        mask = np.stack([np.arange(t) < n for n in lengths]).astype(np.float32)
        cases["padded_batch"] = (batch[features.AUDIO], batch[features.VISUAL], mask, mask, mask)
    return cases


def verify_export(export_dir, model, recordings, *, tolerance=TOLERANCE, timeout=600) -> dict:
    """Loads the SavedModel in a fresh process with plain TensorFlow and compares it with `model`.

    Every case of `verification_cases` runs through `serving_default` (with its mask),
    `without_mask` and `serving_default` fed the SignatureDef's default mask (what TF Serving does
    for a request without one); the last two only for cases whose mask is all ones.

    Returns:
        dict with `max_abs_diff` (float), `outputs` (sorted output names), `cases` (int),
        `subprocess` (the child's report line) and `signature` (saved_model_cli's listing).

    Raises:
        ColdKerasError: the child process failed, an output is missing, or a difference exceeds
            `tolerance`.
    """
    export_dir = Path(export_dir)
    cases = verification_cases(recordings)
    with tempfile.TemporaryDirectory(prefix="cold-keras-verify-") as tmp:
        inputs_path, outputs_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        keys = (features.AUDIO, features.VISUAL, features.MASK, features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        np.savez(
            inputs_path,
            **{f"{case}/{key}": array for case, arrays in cases.items() for key, array in zip(keys, arrays)},
        )
        # cwd is the temporary folder so that nothing of this repository is importable by accident.
        result = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT, str(export_dir.resolve()), str(inputs_path), str(outputs_path)],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_env(),
        )
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ColdKerasError(f"the exported model failed to run in plain TensorFlow: {tail}", export_dir)
        served = dict(np.load(outputs_path))

    worst, names = 0.0, None
    has_presence = _has_presence_inputs(model)
    for case, (audio, visual, mask, audio_present, visual_present) in cases.items():
        if not has_presence and case == "visual_absent":
            continue
        expected = keras_outputs(model, audio, visual, mask, audio_present, visual_present)
        names = sorted(expected)
        runs = [SERVING_DEFAULT]
        if np.all(mask == 1) and np.all(audio_present == 1) and np.all(visual_present == 1):
            runs += [WITHOUT_MASK, "default_mask"]
        for run in runs:
            for name, value in expected.items():
                key = f"{case}/{run}/{name}"
                if key not in served:
                    raise ColdKerasError(f"the exported model has no output {name!r} in {run}", export_dir)
                if served[key].shape != value.shape:
                    raise ColdKerasError(
                        f"{run} output {name!r} has shape {served[key].shape}, the Keras model gives {value.shape}",
                        export_dir,
                    )
                diff = float(np.max(np.abs(served[key] - value))) if value.size else 0.0
                if not diff <= tolerance:
                    raise ColdKerasError(
                        f"{run} output {name!r} differs from the Keras model by {diff:.3g} "
                        f"(tolerance {tolerance:g}) on {case}",
                        export_dir,
                    )
                worst = max(worst, diff)
    listing = show_signature(export_dir)
    expected_inputs = features.INPUT_KEYS if has_presence else features.FEATURE_KEYS
    for key in expected_inputs:
        if f"inputs['{key}']" not in listing:
            raise ColdKerasError(f"saved_model_cli does not list input {key!r} of serving_default", export_dir)
    return {
        "max_abs_diff": worst,
        "outputs": names,
        "cases": len(cases),
        "inputs": list(expected_inputs),
        "subprocess": result.stdout.strip().splitlines()[-1],
        "signature": listing,
    }


# --------------------------------------------------------------------------- versions


def existing_versions(model_root) -> list:
    """Numeric version folders under `model_root`, sorted."""
    root = Path(model_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_root) -> int:
    versions = existing_versions(model_root)
    return versions[-1] + 1 if versions else 1


def _process_runs(pid: int) -> bool:
    """True while process `pid` exists (also one of another user, which we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(model_root, max_age_seconds: float = 3600.0) -> list:
    """Removes the hidden temporary folders of exports that did not finish; returns their paths.

    A temporary folder `.tmp-export-<version>-<pid>-...` is stale when process <pid> no longer
    runs; a folder without a readable pid when it is older than `max_age_seconds`.
    """
    import time

    root = Path(model_root)
    removed = []
    if not root.is_dir():
        return removed
    for path in root.glob(f"{_TMP_PREFIX}*"):
        parts = path.name[len(_TMP_PREFIX) :].split("-")
        pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
        if pid is not None and pid != os.getpid():
            if _process_runs(pid):
                continue  # that export is still running
        elif pid is None and time.time() - path.stat().st_mtime < max_age_seconds:
            continue
        elif pid == os.getpid():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _check_name(name: str) -> None:
    if not _NAME.match(name or ""):
        raise ConfigError(
            f"model name {name!r}: use letters, digits, '_', '-' and '.' (no '/'), starting with a letter or digit"
        )


def run(
    run_dir, name, version=None, base_dir="saved_models", *, warmup_recordings=3, verify=True, progress=True
) -> Path:
    """Exports the model of a run directory to `<base_dir>/<name>/<version>/`.

    Args:
        run_dir: path of a run directory written by `pipelines.train`.
        name: str. The model's name on the server (the folder under `base_dir`).
        version: optional int >= 1. Defaults to one more than the highest existing version (1 for
            the first).
        base_dir: path. Defaults to "saved_models".
        warmup_recordings: int. Recordings whose requests go into the warmup file (and are used
            for verification). Defaults to 3.
        verify: bool. Run the plain-TensorFlow and saved_model_cli checks before publishing.
            Defaults to True.
        progress: bool. A progress bar over the export's steps. Defaults to True.

    Returns:
        Path of the version folder.

    Raises:
        ConfigError: a bad name or version, or the version exists.
        DataError: the run directory or its data artefacts are missing.
        ColdKerasError: the exported model does not reproduce the Keras model.
    """
    _check_name(name)
    config_path = Path(run_dir) / "config.json"
    if config_path.is_file() and read_json(config_path).get("mode") == "raw":
        raise ConfigError(
            "this is a raw-mode run; the export's serving signature takes per-frame features, "
            "so raw-mode runs cannot be exported yet",
            run_dir,
        )
    model_root = Path(base_dir) / name
    if version is not None:
        if int(version) < 1:
            raise ConfigError(f"--version must be a positive integer, got {version}")
        version = int(version)
        if (model_root / str(version)).exists():
            raise ConfigError(
                f"version {version} already exists; pass another --version or leave it out to "
                f"use {next_version(model_root)}",
                model_root / str(version),
            )
    model, config = load_inference_model(run_dir)
    artifact_dir = artifact_dir_of(config, run_dir)
    from pipelines.evaluation import uncertainty

    model = uncertainty.servable_model(model, run_dir, config, artifact_dir)
    recordings = sample_recordings(artifact_dir, max(1, int(warmup_recordings)))

    model_root.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(model_root)
    for stale in clean_stale_temporaries(model_root):
        print(f"removed {stale}, the temporary folder of an export that did not finish")
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{version}-{os.getpid()}-", dir=model_root))

    def save():
        save_saved_model(model, tmp)
        pause_point("export.saved")

    def warmup():
        count = write_warmup_requests(tmp / "assets.extra" / WARMUP_FILE, name, recordings)
        # The run's settings travel with the model: `pipelines.predict --saved-model` reads corpora with them.
        write_json_atomic(tmp / "assets.extra" / "config.json", config)
        return count

    steps = [("SavedModel", save), ("warmup requests", warmup)]
    if verify:
        steps.append(("check in a fresh TensorFlow process", lambda: verify_export(tmp, model, recordings)))
    try:
        done = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(steps), desc=f"export {name}/{version}", unit="step", file=sys.stderr)
        try:
            for label, step in steps:
                if bar is not None:
                    bar.set_postfix_str(label)
                done[label] = step()
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()  # now, so an interrupt's message is the last line, not the bar
        count, report = done["warmup requests"], done.get("check in a fresh TensorFlow process")
        make_readable(tmp)  # mkdtemp's folder is private (0700); TF Serving may run as another user
        final = model_root / str(version)
        try:
            os.rename(tmp, final)  # fails if the version appeared meanwhile
        except OSError:
            raise ConfigError(f"version {version} already exists", final) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(model_root / MODELS_CONFIG, models_config_text(name, model_root))

    print(f"exported {config.get('model', {}).get('name', 'model')} from {run_dir} to {final}")
    print(f"  signatures: {SERVING_DEFAULT} (audio, visual, optional mask), {WITHOUT_MASK} (audio, visual)")
    print(f"  warmup: {count} PredictionLog requests from {len(recordings)} recordings")
    print(f"  TF Serving config: {model_root / MODELS_CONFIG}")
    if report is not None:
        print(f"  check: {report['subprocess']}")
        print(
            f"  check: {len(report['outputs'])} outputs x {report['cases']} cases match Keras, max |diff| "
            f"{report['max_abs_diff']:.2e} (tolerance {TOLERANCE:g})"
        )
        print(f"  check: saved_model_cli lists serving_default inputs {', '.join(report['inputs'])}")
    return final


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.export",
        description="Export a trained run as a TF Serving SavedModel with warmup requests and a models.config. "
        "Example: python -m pipelines.export --run-dir runs/synthetic_cold_fusion_regression "
        "--name cold_fusion",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
    parser.add_argument("--name", required=True, help="model name on the server (folder under --base-dir)")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--base-dir", default="saved_models", help="export root")
    parser.add_argument(
        "--warmup-recordings", type=int, default=3, help="recordings whose requests make the warmup file"
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (the model's folder is made once the model has loaded), before TensorFlow starts.
    cli.check_output_dir(args.base_dir, "--base-dir", create=False)
    _check_name(args.name)
    cli.check_output_dir(Path(args.base_dir) / args.name, "--base-dir/--name", create=False)
    run(args.run_dir, args.name, version=args.version, base_dir=args.base_dir, warmup_recordings=args.warmup_recordings)
