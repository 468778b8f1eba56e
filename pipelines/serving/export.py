"""Exporting (`python -m pipelines.export`): writes the trained model of a run directory as a TF
Serving SavedModel:

    <base-dir>/<NAME>/models.config                  model_config_list for tensorflow_model_server
    <base-dir>/<NAME>/<N>/saved_model.pb, variables/
    <base-dir>/<NAME>/<N>/assets.extra/tf_serving_warmup_requests
    <base-dir>/<NAME>/<N>/assets.extra/config.json   the run's config (read by pipelines.predict)

The SavedModel holds the servable graph of the run's inference model, with the signatures and outputs
`pipelines.serving.servable` describes; `pipelines.serving.tf_serving` writes the warmup requests and
`models.config`, and `pipelines.serving.versions` names the version folders.

The version is written to a hidden temporary folder next to the version folders, checked (a fresh
Python process with plain TensorFlow loads it and must reproduce the Keras model's outputs on real
recordings to 1e-5; `saved_model_cli` must list the signature: `pipelines.serving.export_check`) and
only then renamed to `<N>`, so TF Serving, which polls the folder, never sees a partial or unchecked
version.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from pipelines.config.settings import resolve_saved
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import make_readable, read_json, write_json_atomic, write_text_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.runs.folders import artifact_dir_of, load_inference_model
from pipelines.serving import export_check, servable, tf_serving, versions


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
    versions.check_name(name)
    config_path = Path(run_dir) / "config.json"
    if config_path.is_file() and resolve_saved(read_json(config_path), config_path).mode == "raw":
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
                f"use {versions.next_version(model_root)}",
                model_root / str(version),
            )
    model, config = load_inference_model(run_dir)
    artifact_dir = artifact_dir_of(config, run_dir)
    from pipelines.evaluation import conformal as conformal_lib
    from pipelines.evaluation import uncertainty

    model = uncertainty.servable_model(model, run_dir, config, artifact_dir)
    conformal = conformal_lib.load(run_dir) if config.task == "regression" else None
    recordings = sample_recordings(artifact_dir, max(1, int(warmup_recordings)))

    model_root.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = versions.next_version(model_root)
    for stale in versions.clean_stale_temporaries(model_root):
        print(f"removed {stale}, the temporary folder of an export that did not finish")
    tmp = Path(tempfile.mkdtemp(prefix=f"{versions.TMP_PREFIX}{version}-{os.getpid()}-", dir=model_root))

    def save():
        servable.save_saved_model(model, tmp)
        pause_point("export.saved")

    def warmup():
        count = tf_serving.write_warmup_requests(tmp / "assets.extra" / tf_serving.WARMUP_FILE, name, recordings)
        # The run's settings travel with the model: `pipelines.predict --saved-model` reads corpora with them.
        write_json_atomic(tmp / "assets.extra" / "config.json", config.to_dict())
        return count

    steps = [("SavedModel", save), ("warmup requests", warmup)]
    if verify:
        steps.append(
            (
                "check in a fresh TensorFlow process",
                lambda: export_check.verify_export(tmp, model, recordings, conformal=conformal),
            )
        )
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
    write_text_atomic(model_root / tf_serving.MODELS_CONFIG, tf_serving.models_config_text(name, model_root))

    print(f"exported {config.model.name} from {run_dir} to {final}")
    print(
        f"  signatures: {servable.SERVING_DEFAULT} (audio, visual, optional mask), "
        f"{servable.WITHOUT_MASK} (audio, visual)"
    )
    print(f"  warmup: {count} PredictionLog requests from {len(recordings)} recordings")
    print(f"  TF Serving config: {model_root / tf_serving.MODELS_CONFIG}")
    if report is not None:
        print(f"  check: {report['subprocess']}")
        print(
            f"  check: {len(report['outputs'])} outputs x {report['cases']} cases match Keras, max |diff| "
            f"{report['max_abs_diff']:.2e} (tolerance {export_check.TOLERANCE:g})"
        )
        if report.get("conformal_max_abs_diff") is not None:
            print(
                f"  check: the interval bounds match the NumPy conformal calibration, max |diff| "
                f"{report['conformal_max_abs_diff']:.2e}"
            )
        print(f"  check: saved_model_cli lists serving_default inputs {', '.join(report['inputs'])}")
    return final
