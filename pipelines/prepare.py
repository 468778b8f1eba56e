"""Runs (or reuses) the data components for a configuration: ExampleGen -> statistics -> schema
-> validation -> transform. Shared by the trainer and the tuner.

Artefacts live in the cache (`$COLD_KERAS_CACHE/artifacts/<dataset>-<key>`), keyed by the data
folder and the data options, so every run on the same data reuses one set of shards.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

from pipelines import config as config_lib
from pipelines.errors import ConfigError


def corpus_options(config: dict) -> dict:
    """The keyword arguments `pipelines.datasets.open_corpus` takes, from the config."""
    dataset = config["dataset"]
    feats = config.get("features", {})
    options = {}
    if dataset in ("avec", "synthetic"):
        if feats.get("audio"):
            options["audio_features"] = list(feats["audio"])
        if feats.get("visual"):
            options["visual_features"] = list(feats["visual"])
    if dataset == "iemocap":
        if not config.get("features_dir"):
            raise ConfigError("IEMOCAP needs --features-dir (or features_dir in the config): the folder of "
                              "per-utterance feature files <features_dir>/<modality>/<utterance id>.npy|.csv")
        options["features_dir"] = str(Path(config["features_dir"]).expanduser().resolve())
        options["audio_features"] = (feats.get("audio") or ["audio"])[0]
        options["visual_features"] = (feats.get("visual") or ["visual"])[0]
        options["validation_speaker"] = config.get("validation_speaker", "F")
    if config.get("allow_missing_modality"):
        options["allow_missing_modality"] = True
    return options


def check_inputs(config: dict) -> None:
    """Cheap checks of the data settings, run before TensorFlow is imported."""
    if config["dataset"] != "synthetic" or config.get("data_dir"):
        _given_data_dir(config)
    if config["dataset"] == "iemocap":
        corpus_options(config)


def _given_data_dir(config: dict) -> Path:
    dataset = config["dataset"]
    if not config.get("data_dir"):
        raise ConfigError(f"--data-dir is required for --dataset {dataset}: pass the corpus folder "
                          f"(or set data_dir in the config)")
    root = Path(config["data_dir"]).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError("data folder does not exist", root)
    return root


def resolve_data_dir(config: dict, progress=True) -> Path:
    """The corpus folder; the synthetic corpus is generated into the cache on first use."""
    dataset = config["dataset"]
    if dataset == "synthetic" and not config.get("data_dir"):
        from pipelines.datasets import synthetic

        params = dict(config.get("synthetic") or {})
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
            raise ConfigError(f"unknown synthetic option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(accepted))}")
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        root = config_lib.cache_dir() / "synthetic" / key
        synthetic.generate(root, **params)
        return root
    return _given_data_dir(config)


def logmel_settings(config: dict):
    """The log-mel settings of a raw-mode config (`raw.logmel`), None in feature mode."""
    if config_lib.mode_of(config) != "raw":
        return None
    return dict((config.get("raw") or {}).get("logmel") or {})


def artifact_dir_for(config: dict, data_dir: Path) -> Path:
    key = {"dataset": config["dataset"], "data_dir": str(data_dir), "options": corpus_options(config)}
    if config_lib.mode_of(config) == "raw":
        key.update(mode="raw", logmel=logmel_settings(config))
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return config_lib.cache_dir() / "artifacts" / f"{config['dataset']}-{digest}"


def prepare_artifacts(config: dict, progress=True, artifact_dir=None) -> Path:
    """Runs every data component that is not up to date; returns the artefact folder.

    Raises a DataError when the validator finds a blocking anomaly.
    """
    from pipelines import example_gen, statistics_gen, transform
    from pipelines.datasets import open_corpus

    data_dir = resolve_data_dir(config, progress=progress)
    out = Path(artifact_dir) if artifact_dir else artifact_dir_for(config, data_dir)
    corpus = open_corpus(config["dataset"], data_dir, **corpus_options(config))
    mode = config_lib.mode_of(config)
    if corpus.mode != mode:
        raise ConfigError(f"holds a {corpus.mode} corpus, but the run is in {mode} mode; "
                          f"pass --mode {corpus.mode} or another --data-dir", data_dir)
    example_gen.run(corpus, out, progress=progress, logmel=logmel_settings(config))
    statistics_gen.run(out)
    statistics_gen.check_anomalies(out)
    transform.run(out)
    return out
