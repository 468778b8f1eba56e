"""Runs (or reuses) the data components for a configuration: ExampleGen -> statistics -> schema
-> validation -> transform. Shared by the trainer and the tuner.

Artefacts live in the cache (`$COLD_KERAS_CACHE/artifacts/<dataset>-<key>`), keyed by the data
folder and the data options, so every run on the same data reuses one set of shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from pathlib import Path

from pipelines.config import files as config_lib
from pipelines.config import settings
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json


def corpus_options(config) -> dict:
    """The keyword arguments `pipelines.datasets.open_corpus` takes, from the config (a RunConfig, or
    a mapping parsed into one)."""
    config = settings.as_run_config(config)
    dataset = config.dataset
    feats = config.features
    options = {}
    if dataset in ("avec", "synthetic"):
        if feats.audio:
            options["audio_features"] = list(feats.audio)
        if feats.visual:
            options["visual_features"] = list(feats.visual)
    if dataset == "iemocap":
        if not config.features_dir:
            raise ConfigError(
                "IEMOCAP needs --features-dir (or features_dir in the config): the folder of "
                "per-utterance feature files <features_dir>/<modality>/<utterance id>.npy|.csv"
            )
        options["features_dir"] = str(Path(config.features_dir).expanduser().resolve())
        options["audio_features"] = (feats.audio or ["audio"])[0]
        options["visual_features"] = (feats.visual or ["visual"])[0]
        options["validation_speaker"] = config.validation_speaker
    if config.allow_missing_modality:
        options["allow_missing_modality"] = True
    from pipelines.components.example_gen import strictness_option

    options.update(strictness_option(dataset, config.strict))
    return options


def check_inputs(config) -> None:
    """Cheap checks of the data settings, run before TensorFlow is imported."""
    config = settings.as_run_config(config)
    if config.dataset != "synthetic" or config.data_dir:
        _given_data_dir(config)
    if config.dataset == "iemocap":
        corpus_options(config)


def _given_data_dir(config: settings.RunConfig) -> Path:
    dataset = config.dataset
    if not config.data_dir:
        raise ConfigError(
            f"--data-dir is required for --dataset {dataset}: pass the corpus folder (or set data_dir in the config)"
        )
    root = Path(config.data_dir).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ConfigError("--data-dir (data_dir) is a file; pass the corpus folder that holds it", root)
    if not root.is_dir():
        raise ConfigError("data folder does not exist (--data-dir / data_dir)", root)
    return root


def resolve_data_dir(config, progress=True) -> Path:
    """The corpus folder; the synthetic corpus is generated into the cache on first use."""
    config = settings.as_run_config(config)
    dataset = config.dataset
    if dataset == "synthetic" and not config.data_dir:
        from pipelines.datasets import synthetic

        params = dict(config.synthetic or {})
        if config_lib.mode_of(config) == "raw":
            params["raw"] = True
        else:  # the raw-only options do not change a feature corpus (nor its cache key)
            for key in ("raw", "face_size", "sample_rate"):
                params.pop(key, None)
        if params.get("variant") == "simple":  # the default: the same corpus and cache folder as without the key
            params.pop("variant")
        accepted = set(inspect.signature(synthetic.generate).parameters) - {"output_dir", "progress"}
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ConfigError(f"unknown synthetic option(s) {', '.join(unknown)}; known: {', '.join(sorted(accepted))}")
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        root = config_lib.cache_dir() / "synthetic" / key
        synthetic.generate(root, progress=progress, **params)
        return root
    return _given_data_dir(config)


def logmel_settings(config):
    """The log-mel settings of a raw-mode config (`raw.logmel`), None in feature mode."""
    config = settings.as_run_config(config)
    if config_lib.mode_of(config) != "raw":
        return None
    return dict((config.raw.logmel if config.raw is not None else None) or {})


def artifact_dir_for(config, data_dir: Path) -> Path:
    config = settings.as_run_config(config)
    key = {"dataset": config.dataset, "data_dir": str(data_dir), "options": corpus_options(config)}
    if config_lib.mode_of(config) == "raw":
        key.update(mode="raw", logmel=logmel_settings(config))
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return config_lib.cache_dir() / "artifacts" / f"{config.dataset}-{digest}"


def prepare_artifacts(config, progress=True, artifact_dir=None) -> Path:
    """Runs every data component that is not up to date; returns the artefact folder.

    Raises a DataError when the validator finds a blocking anomaly.
    """
    from pipelines.components import example_gen, statistics_gen, transform
    from pipelines.datasets import open_corpus

    config = settings.as_run_config(config)
    data_dir = resolve_data_dir(config, progress=progress)
    out = Path(artifact_dir) if artifact_dir else artifact_dir_for(config, data_dir)
    corpus = open_corpus(config.dataset, data_dir, **corpus_options(config))
    mode = config_lib.mode_of(config)
    if corpus.mode != mode:
        raise ConfigError(
            f"holds a {corpus.mode} corpus, but the run is in {mode} mode; "
            f"pass --mode {corpus.mode} or another --data-dir",
            data_dir,
        )
    example_gen.run(corpus, out, progress=progress, logmel=logmel_settings(config))
    statistics_gen.run(out, bar=progress)
    statistics_gen.check_anomalies(out)
    transform.run(out, bar=progress)
    return out


# --------------------------------------------------------------------------- a run's artefacts


def corpus_fingerprint(artifact_dir):
    """The corpus fingerprint ExampleGen recorded in `manifest.json` (None if there is none)."""
    path = Path(artifact_dir) / "manifest.json"
    return read_json(path).get("fingerprint") if path.is_file() else None


def rebuild_command(run_dir) -> str:
    """The command that rebuilds the data artefacts of a run directory."""
    return f"python -m pipelines.prepare --run-dir {run_dir}"


def rebuild_run_artifacts(run_dir, progress=True) -> Path:
    """Rebuilds the data artefacts of a finished run from the corpus recorded in its config.json.

    The artefacts are written where the run recorded them (`runtime.artifact_dir`). When the run
    recorded a corpus fingerprint, the rebuilt artefacts must have the same one: a changed corpus
    would give other numbers than the run was trained and scored on.

    Raises:
        DataError: no config.json, the corpus is gone or changed.
    """
    import shutil

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DataError("not found: train a model into this run directory first", config_path)
    config = settings.resolve_saved(read_json(config_path), config_path)
    runtime = config.runtime or {}
    config = dataclasses.replace(config, runtime=None)
    target = runtime.get("artifact_dir")
    if config.dataset not in config_lib.DATASETS:
        raise DataError(
            f"cannot rebuild the run's data artefacts ({target}): config.json names no known dataset", config_path
        )
    try:
        check_inputs(config)
    except ConfigError as error:
        raise DataError(
            f"cannot rebuild the run's data artefacts: {error}; restore the corpus, then run "
            f"{rebuild_command(run_dir)}",
            config_path,
        ) from None
    print(
        f"rebuilding the data artefacts of {run_dir} from its corpus ({config.dataset}, "
        f"{config.data_dir or 'synthetic corpus in the cache'})"
    )
    out = prepare_artifacts(config, progress=progress, artifact_dir=target)
    expected, found = runtime.get("corpus_fingerprint"), corpus_fingerprint(out)
    if expected and found != expected:
        shutil.rmtree(out, ignore_errors=True)
        raise DataError(
            f"the corpus changed since this run was trained (fingerprint {str(found)[:12]}, the run "
            f"used {str(expected)[:12]}); its artefacts cannot be rebuilt from it",
            config_path,
        )
    return out
