"""The check an export passes before it is published: a fresh Python process with plain TensorFlow
loads the SavedModel and must reproduce the Keras model's outputs on real recordings to `TOLERANCE`
(with the mask, without it, and fed the SignatureDef's defaults), and `saved_model_cli show` (run in
that same process, so the check starts TensorFlow once) must list the serving signature's inputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipelines.core.errors import ColdKerasError
from pipelines.data import features
from pipelines.serving import servable

TOLERANCE = 1e-5

# Runs in a fresh interpreter: plain TensorFlow, nothing from this project.
_VERIFY_SCRIPT = r"""
import contextlib
import io
import sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.tools import saved_model_cli

export_dir, inputs_path, outputs_path, listing_path = sys.argv[1:5]
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
# What `saved_model_cli show --dir ... --tag_set serve --signature_def serving_default` prints: the
# same tool, run in this process so that the check starts TensorFlow once.
listing = io.StringIO()
sys.argv = ["saved_model_cli", "show", "--dir", export_dir, "--tag_set", "serve", "--signature_def", "serving_default"]
with contextlib.redirect_stdout(listing):
    try:
        saved_model_cli.main()
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
with open(listing_path, "w") as handle:
    handle.write(listing.getvalue())
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


def show_signature(export_dir, signature=servable.SERVING_DEFAULT, timeout=300) -> str:
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


def numpy_bounds(conformal, outputs, mask, audio_present=None, visual_present=None) -> dict:
    """The `*_lower` / `*_upper` of `conformal` (a `ConformalCalibration`) computed in NumPy from a
    batch of Keras outputs [B, T], each row up to its mask's length: {name: [B, T] (NaN on padding)}."""
    result = {}
    for row in range(mask.shape[0]):
        n = int(np.sum(mask[row] > 0.5))
        outputs_row = {name: value[row, :n] for name, value in outputs.items() if np.ndim(value) == 2}
        for key, flags in ((features.AUDIO_PRESENT, audio_present), (features.VISUAL_PRESENT, visual_present)):
            if flags is not None:
                outputs_row[key] = flags[row, :n]
        for name, value in conformal.bounds(outputs_row).items():
            if name.endswith(("_lower", "_upper")):
                result.setdefault(name, np.full(mask.shape, np.nan))[row, :n] = value
    return result


def verify_export(export_dir, model, recordings, *, tolerance=TOLERANCE, timeout=600, conformal=None) -> dict:
    """Loads the SavedModel in a fresh process with plain TensorFlow and compares it with `model`.

    Every case of `verification_cases` runs through `serving_default` (with its mask),
    `without_mask` and `serving_default` fed the SignatureDef's default mask (what TF Serving does
    for a request without one); the last two only for cases whose mask is all ones.

    With `conformal` (the run's `ConformalCalibration`), the served `*_lower` / `*_upper` of every case
    must also match the NumPy bounds of `conformal` on the Keras outputs (`numpy_bounds`), frame by
    frame on the real frames.

    Returns:
        dict with `max_abs_diff` (float), `outputs` (sorted output names), `cases` (int),
        `conformal_max_abs_diff` (float or None),
        `subprocess` (the child's report line) and `signature` (saved_model_cli's listing).

    Raises:
        ColdKerasError: the child process failed, an output is missing, or a difference exceeds
            `tolerance`.
    """
    export_dir = Path(export_dir)
    cases = verification_cases(recordings)
    with tempfile.TemporaryDirectory(prefix="cold-keras-verify-") as tmp:
        inputs_path, outputs_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        listing_path = Path(tmp) / "signature.txt"
        keys = (features.AUDIO, features.VISUAL, features.MASK, features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        np.savez(
            inputs_path,
            **{f"{case}/{key}": array for case, arrays in cases.items() for key, array in zip(keys, arrays)},
        )
        # cwd is the temporary folder so that nothing of this repository is importable by accident.
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _VERIFY_SCRIPT,
                str(export_dir.resolve()),
                str(inputs_path),
                str(outputs_path),
                str(listing_path),
            ],
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
        listing = listing_path.read_text()

    worst, names, worst_bounds = 0.0, None, None
    # Imported here: the CLI checks its arguments before TensorFlow is loaded.
    from pipelines.evaluation.scoring import has_presence_inputs

    has_presence = has_presence_inputs(model)
    for case, (audio, visual, mask, audio_present, visual_present) in cases.items():
        if not has_presence and case == "visual_absent":
            continue
        expected = servable.keras_outputs(model, audio, visual, mask, audio_present, visual_present)
        names = sorted(expected)
        runs = [servable.SERVING_DEFAULT]
        if np.all(mask == 1) and np.all(audio_present == 1) and np.all(visual_present == 1):
            runs += [servable.WITHOUT_MASK, "default_mask"]
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
        if conformal is not None:
            flags = (audio_present, visual_present) if has_presence else (None, None)
            reference = numpy_bounds(conformal, expected, mask, *flags)
            if not reference:
                raise ColdKerasError("the conformal calibration gives no bounds for the model's outputs", export_dir)
            for name, value in reference.items():
                key = f"{case}/{servable.SERVING_DEFAULT}/{name}"
                if key not in served:
                    raise ColdKerasError(f"the exported model has no output {name!r}", export_dir)
                real = ~np.isnan(value)
                diff = float(np.max(np.abs(served[key][real] - value[real]))) if real.any() else 0.0
                if not diff <= tolerance:
                    raise ColdKerasError(
                        f"output {name!r} differs from the NumPy conformal bounds by {diff:.3g} "
                        f"(tolerance {tolerance:g}) on {case}",
                        export_dir,
                    )
                worst_bounds = max(worst_bounds or 0.0, diff)
    expected_inputs = features.INPUT_KEYS if has_presence else features.FEATURE_KEYS
    for key in expected_inputs:
        if f"inputs['{key}']" not in listing:
            raise ColdKerasError(f"saved_model_cli does not list input {key!r} of serving_default", export_dir)
    return {
        "max_abs_diff": worst,
        "conformal_max_abs_diff": worst_bounds,
        "outputs": names,
        "cases": len(cases),
        "inputs": list(expected_inputs),
        "subprocess": result.stdout.strip().splitlines()[-1],
        "signature": listing,
    }
