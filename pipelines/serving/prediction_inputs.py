"""What a prediction reads: the run's settings, the corpus folder read with them, and each recording
as the model takes it.

The settings are the run's `config.json`, or the `assets.extra/config.json` that `pipelines.export`
puts next to the SavedModel (`reading_config`), with the command's overrides (`corpus_settings`).
Feature corpora are read with the run's adapter, feature folders and presence handling, labels
optional (`open_for_prediction`); raw corpora are the raw synthetic corpus or own recordings
(`open_raw_for_prediction`), whose audio becomes log-mel patches with the run's settings
(`raw_model_inputs`). A corpus at another frame hop than the model was trained at is refused
(`check_hop`).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from pipelines.config import settings
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json
from pipelines.data import features
from pipelines.datasets import ADAPTERS

SAVED_MODEL_CONFIG = Path("assets.extra") / "config.json"


def reading_config(run_dir=None, saved_model=None) -> tuple:
    """(config: RunConfig, where it came from): the run's `config.json`, else the SavedModel's copy of it."""
    if run_dir is not None:
        path = Path(run_dir) / "config.json"
        if not Path(run_dir).is_dir():
            raise DataError("run directory not found", run_dir)
    else:
        path = Path(saved_model) / SAVED_MODEL_CONFIG
    if not path.is_file():
        if run_dir is not None:
            raise DataError(
                "not a run directory (no config.json); train one with python -m pipelines.train ... --output-dir RUN",
                run_dir,
            )
        raise DataError(
            "no assets.extra/config.json next to the SavedModel (exports made before it was "
            "written there); pass the run directory it came from with --run-dir",
            saved_model,
        )
    try:
        mapping = read_json(path)
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", path) from None
    return settings.resolve_saved(mapping, path), path


def corpus_settings(config, args) -> tuple:
    """(dataset, corpus options) for `open_corpus`: the run's (a RunConfig), with the command's overrides."""
    from pipelines.runs import prepare

    config = settings.as_run_config(config)
    dataset = args.dataset or config.dataset
    if dataset not in ADAPTERS:
        raise ConfigError(f"--dataset must be one of {', '.join(ADAPTERS)}, got {dataset!r}")
    changes: dict = {"dataset": dataset, "features": {}}
    if args.audio_features:
        changes["features"]["audio"] = [p.strip() for p in args.audio_features.split(",") if p.strip()]
    if args.visual_features:
        changes["features"]["visual"] = [p.strip() for p in args.visual_features.split(",") if p.strip()]
    if args.features_dir:
        changes["features_dir"] = args.features_dir
    if args.allow_missing_modality:
        changes["allow_missing_modality"] = True
    config = config.updated(changes, check_values=False)
    return config.dataset, prepare.corpus_options(config)


def open_for_prediction(dataset, data_dir, options, select):
    """The corpus to predict on. AVEC-layout folders (avec, synthetic) are read with labels optional in
    every partition (a folder without `labels/` works), and only the recordings `select(name, partition)`
    accepts are read; IEMOCAP-style folders are read whole by their adapter."""
    if dataset == "iemocap":
        from pipelines.datasets import open_corpus

        return open_corpus(dataset, data_dir, **options)
    from pipelines.datasets.avec import open_layout

    return open_layout(
        data_dir,
        audio_features=options.get("audio_features") or [features.AUDIO],
        visual_features=options.get("visual_features") or [features.VISUAL],
        allow_missing_modality=bool(options.get("allow_missing_modality")),
        dataset=dataset,
        labels_optional=True,
        select=select,
    )


def feature_files(dataset, data_dir, options, modality, name) -> str:
    """The feature file(s) one recording's modality was read from, for error messages."""
    if dataset == "iemocap":
        folder = Path(options["features_dir"]) / options[f"{modality}_features"]
        found = sorted(folder.glob(f"{name}.*"))
        return str(found[0] if found else folder / name)
    folders = options.get(f"{modality}_features") or [modality]
    return ", ".join(str(Path(data_dir) / folder / f"{name}.csv") for folder in folders)


def raw_settings_of(config, config_source) -> dict:
    """A raw-mode run's input settings (sample rate, face crop shape, log-mel settings): recorded in
    config.json's `runtime.raw` by the trainer, else read from the run's artefact manifest."""
    runtime = settings.as_run_config(config).runtime or {}
    recorded = runtime.get("raw")
    if recorded:
        return recorded
    artifact_dir = runtime.get("artifact_dir")
    manifest = Path(artifact_dir or "") / "manifest.json"
    if not artifact_dir or not manifest.is_file():
        raise DataError(
            "a raw-mode run trained before its input settings were recorded, whose artefacts are gone "
            f"({manifest}); train it again to predict on other recordings",
            config_source,
        )
    from pipelines.training.train import raw_runtime

    return raw_runtime(read_json(manifest))["raw"]


def open_raw_for_prediction(data_dir, select):
    """A raw corpus to predict on: the raw synthetic corpus (it has synthetic.json), else own
    recordings in the layout `pipelines.extract` writes (`pipelines.datasets.recordings`)."""
    if (Path(data_dir) / "synthetic.json").is_file():
        from pipelines.datasets import open_corpus

        corpus = open_corpus("synthetic", data_dir)
        if corpus.mode == "raw":
            inner = corpus.recordings
            corpus.recordings = lambda: (r for r in inner() if select(r.name, r.partition))
        return corpus
    from pipelines.datasets.recordings import open_recordings

    return open_recordings(data_dir, labels_optional=True, select=select)


def raw_model_inputs(recording, settings: dict, root) -> dict:
    """One raw recording as the model takes it, prepared as for training: the log-mel spectrogram of
    the waveform cut into one patch per frame (`pipelines.data.raw_inputs`) and the face crops.

    Raises:
        DataError: another sample rate or face crop size than the model was trained on.
    """
    from pipelines.data import raw_inputs

    shape = [int(x) for x in np.shape(recording.faces)[1:]]
    if shape != list(settings["visual_shape"]):
        raise DataError(
            f"face crops of {shape[0]}x{shape[1]}, but the model takes {settings['visual_shape'][0]}x"
            f"{settings['visual_shape'][1]} (recording {recording.name}); extract them again with "
            "python -m pipelines.extract --for-run RUN",
            root,
        )
    if int(recording.sample_rate) != int(settings["sample_rate"]):
        raise DataError(
            f"audio at {recording.sample_rate} Hz, but the model was trained at {settings['sample_rate']} Hz "
            f"(recording {recording.name}); extract it again with python -m pipelines.extract --for-run RUN",
            root,
        )
    logmel = raw_inputs.validate_logmel(settings["logmel"], recording.hop)
    spectrogram = raw_inputs.compute_logmel(recording.waveform, recording.sample_rate, logmel)
    patches = raw_inputs.logmel_patches(spectrogram, recording.num_frames, float(recording.hop), logmel)
    out = recording_dict(recording)
    out.update({features.AUDIO: np.asarray(patches, np.float32), features.VISUAL: recording.faces})
    for key in ("faces", "waveform"):
        out.pop(key, None)
    return out


def recording_dict(recording) -> dict:
    """A recording of a corpus (a dataclass) as a dict of its fields."""
    return {field.name: getattr(recording, field.name) for field in dataclasses.fields(recording)}


def check_hop(corpus_hop, config, config_source, data_dir) -> None:
    """Refuses a corpus whose frames are another hop apart than the model was trained at (its outputs
    would be meaningless, e.g. pinned near +-1). The trained hop is `runtime.hop` of the run's
    config.json; a run saved before the trainer recorded it counts as 0.1 s.

    Raises:
        DataError naming `data_dir`, both hops and the config.
    """
    from pipelines.runs import folders as runs

    config = settings.as_run_config(config)
    trained = runs.trained_hop(config)
    if math.isclose(float(corpus_hop), trained, rel_tol=1e-6, abs_tol=1e-9):
        return
    recorded = (config.runtime or {}).get("hop") is not None
    where = (
        f"runtime.hop of {config_source}"
        if recorded
        else f"{config_source} records no hop: a run saved before it was recorded counts as {trained:g} s"
    )
    raise DataError(
        f"frames {float(corpus_hop):g} s apart, but the model was trained on frames {trained:g} s apart "
        f"({where}); resample the features to a {trained:g} s hop",
        data_dir,
    )
