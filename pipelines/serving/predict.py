"""Predictor: runs a trained model on recordings, labelled or not, and writes AVEC-format files.

    python -m pipelines.predict --run-dir RUN --data-dir DIR [--dataset avec] [--partition test] --output-dir OUT
    python -m pipelines.predict --saved-model saved_models/NAME/VERSION --data-dir DIR --output-dir OUT

Raw-mode runs (face crops and waveforms) predict on a raw corpus: own recordings in the layout
`python -m pipelines.extract --for-run RUN` writes (`faces/<name>.npz`, `audio/<name>.wav`; see
`pipelines.datasets.recordings`) or the raw synthetic corpus; the audio is turned into log-mel
patches with the run's settings, and another sample rate or face size is refused naming both.

The model comes from a run directory (`model.keras`) or from an exported SavedModel (plain
TensorFlow, no Keras file: its `serving_default` signature). The corpus is read with the run's own
adapter, feature folders and presence handling (from the run's `config.json`, or from the
`assets.extra/config.json` that `pipelines.export` puts next to the SavedModel; `--run-dir` next to
`--saved-model` takes the run's); the normalisation is part of the model. Any folder in a supported
layout works: for AVEC, the Test partition with or without label files, or a folder holding only
feature folders (no `labels/`). Output, for per-frame corpora (AVEC, synthetic):

    OUT/<name>.csv          name;timestamp;arousal;valence, then the 90% intervals arousal_lower;arousal_upper;
                            valence_lower;valence_upper and audio_present;visual_present (one per recording,
                            named as the recording; --no-intervals: AVEC's four submission columns only)
    OUT/extra/<name>.csv    name;timestamp;<every other per-frame output of the model>
    OUT/plots/<name>.png    with --plot: the predictions with their interval bands, the fusion weights, and
                            the frames where a modality is absent shaded
    OUT/predict.json        what was predicted from what (written first, completed last)

The intervals come from the run's uncertainty calibration (`uncertainty_calibration.json`, which the
trainer writes at the end of every frame-level regression run; for a run trained before that,
`python -m pipelines.uncertainty --run-dir RUN` adds it) or from an exported model's `*_std`
outputs: mu -+ z std with z the Gaussian quantile of `--level` (0.9 by default). A frame with
`visual_present` 0 had no visual input (e.g. no face found), and the model fused audio alone there.

The timestamps are the label file's, or the feature files' when there is none. With a label delay
(`training.label_delay_seconds`) the outputs are shifted back onto the labels' timeline first
(`pipelines.data.label_delay`). The extra file holds the unimodal predictions, the fusion weights, the
sigma norms and any uncertainty output (`*_std`, `*_lower`, `*_upper`), whatever the model gives
(`extra_columns`). Sequence-level corpora (IEMOCAP) get one table, `OUT/utterances.csv` (and
`OUT/utterances_extra.csv`), assembled from one part file per utterance.

Recordings are read, predicted and written one at a time (memory does not grow with the corpus);
every file is written atomically, the prediction file last, so an interrupted run loses nothing
written and a rerun skips the recordings whose files exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from pipelines.config import files as config_lib
from pipelines.core import cli
from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.core.io_utils import read_json, write_json_atomic, write_text_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.data import label_delay as delay_lib
from pipelines.datasets import ADAPTERS

ALL = "all"
EXTRA_FOLDER = "extra"
PLOTS_FOLDER = "plots"
PARTS_FOLDER = ".utterances"
SUMMARY_FILE = "predict.json"
SAVED_MODEL_CONFIG = Path("assets.extra") / "config.json"
FORMAT_VERSION = 1
PREDICTIONS = (features.AROUSAL, features.VALENCE)


# --------------------------------------------------------------------------- outputs -> columns


def extra_columns(outputs: dict) -> dict:
    """The per-frame outputs besides the fused predictions, as named columns.

    Every output with a frame axis except `arousal` / `valence` (and the `*_utterance` outputs):
    unimodal predictions, fusion weights, sigma norms, and any `*_std`, `*_lower`, `*_upper` a model
    adds. An output [N] is one column under its own name; an output [N, K] (classification logits)
    gives columns `<name>_0` .. `<name>_<K-1>`. Columns are sorted by name.

    Args:
        outputs: dict of output name -> array without the batch axis.

    Returns:
        dict column name -> float array [N].
    """
    columns = {}
    for name in sorted(outputs):
        value = np.asarray(outputs[name])
        if name in PREDICTIONS or name.endswith("_utterance") or value.ndim == 0:
            continue
        if value.ndim == 1:
            columns[name] = value
        else:
            for k in range(value.reshape(value.shape[0], -1).shape[1]):
                columns[f"{name}_{k}"] = value.reshape(value.shape[0], -1)[:, k]
    return columns


def utterance_extra(outputs: dict) -> dict:
    """Sequence-level corpora: one value per extra output, the mean over the frames of a per-frame
    column (`extra_columns`) or the value of an utterance-level output other than the two predictions."""
    columns = {name: np.asarray([np.mean(value)]) for name, value in extra_columns(outputs).items()}
    for name in sorted(outputs):
        value = np.asarray(outputs[name])
        if name not in (f"{key}_utterance" for key in PREDICTIONS) and value.ndim == 0:
            columns[name] = value.reshape(1)
    return columns


def _table(rows_name, timestamps, columns: dict) -> str:
    lines = [";".join(["name", "timestamp"] + list(columns))]
    values = [np.asarray(v) for v in columns.values()]
    formats = ["{:d}" if np.issubdtype(v.dtype, np.integer) else "{:.6f}" for v in values]
    for i, timestamp in enumerate(timestamps):
        cells = [f"'{rows_name}'", f"{float(timestamp):.2f}"] + [f.format(v[i].item()) for f, v in zip(formats, values)]
        lines.append(";".join(cells))
    return "\n".join(lines) + "\n"


def frame_timestamps(recording: dict, num_frames: int) -> np.ndarray:
    """The recording's timestamps (labels', else feature files'), or frame index x hop."""
    timestamps = recording.get("timestamps")
    if timestamps is None or len(timestamps) != num_frames:
        timestamps = np.arange(num_frames) * float(recording.get("hop", 0.1))
    return np.asarray(timestamps, np.float64)


# --------------------------------------------------------------------------- models


class KerasPredictor:
    """The inference model of a run directory."""

    def __init__(self, run_dir):
        from pipelines.evaluation import uncertainty
        from pipelines.runs import folders as runs
        from pipelines.serving import export

        self.model, config = runs.load_inference_model(run_dir)
        self.dims = export.feature_dims(self.model)
        # The run's calibrated per-frame std (`python -m pipelines.uncertainty`, or the evaluator, fits it on
        # the validation partition), as the exported SavedModel gives it as outputs.
        self.calibration = None
        if config.get("task") == "regression" and (Path(run_dir) / uncertainty.CALIBRATION_FILES["native"]).is_file():
            self.calibration = uncertainty.Calibration.load(run_dir, "native")

    def __call__(self, recording: dict) -> dict:
        from pipelines.evaluation import scoring as evaluation

        outputs = evaluation.predict_recordings(self.model, [recording])[0]["outputs"]
        if self.calibration is not None:
            outputs = {**outputs, **self.calibration.std(outputs)}
        return outputs


class SavedModelPredictor:
    """An exported SavedModel's `serving_default` signature, through plain TensorFlow."""

    def __init__(self, path):
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, RuntimeError) as error:
            raise DataError(f"cannot load the SavedModel ({str(error).splitlines()[0]})", path) from None
        signatures = getattr(loaded, "signatures", {})
        if "serving_default" not in signatures:
            raise DataError(
                "the SavedModel has no serving_default signature; export it with python -m pipelines.export", path
            )
        self._loaded = loaded  # keeps the variables alive
        self.signature = signatures["serving_default"]
        specs = self.signature.structured_input_signature[1]
        self.inputs = set(specs)
        missing = {features.AUDIO, features.VISUAL} - self.inputs
        if missing:
            raise DataError(f"the serving_default signature has no input {sorted(missing)[0]!r}", path)
        self.dims = {key: int(specs[key].shape[-1]) for key in features.MODALITIES}
        self.tf = tf

    def __call__(self, recording: dict) -> dict:
        tf = self.tf
        audio = np.asarray(recording[features.AUDIO], np.float32)[None]
        inputs = {features.AUDIO: audio, features.VISUAL: np.asarray(recording[features.VISUAL], np.float32)[None]}
        ones = np.ones(audio.shape[:2], np.float32)
        if features.MASK in self.inputs:
            inputs[features.MASK] = ones
        for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT):
            if key in self.inputs:
                value = recording.get(key)
                inputs[key] = ones if value is None else np.asarray(value, np.float32)[None]
        outputs = self.signature(**{key: tf.constant(value) for key, value in inputs.items()})
        return {name: np.asarray(value, np.float32)[0] for name, value in outputs.items()}


# --------------------------------------------------------------------------- settings


def reading_config(run_dir=None, saved_model=None) -> tuple:
    """(config, where it came from): the run's `config.json`, else the SavedModel's copy of it."""
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
        return read_json(path), path
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", path) from None


def corpus_settings(config: dict, args) -> tuple:
    """(dataset, corpus options) for `open_corpus`: the run's, with the command's overrides."""
    from pipelines.runs import prepare

    config = {**config, "features": dict(config.get("features") or {})}
    config["dataset"] = args.dataset or config.get("dataset")
    if config["dataset"] not in ADAPTERS:
        raise ConfigError(f"--dataset must be one of {', '.join(ADAPTERS)}, got {config['dataset']!r}")
    if args.audio_features:
        config["features"]["audio"] = [p.strip() for p in args.audio_features.split(",") if p.strip()]
    if args.visual_features:
        config["features"]["visual"] = [p.strip() for p in args.visual_features.split(",") if p.strip()]
    if args.features_dir:
        config["features_dir"] = args.features_dir
    if args.allow_missing_modality:
        config["allow_missing_modality"] = True
    return config["dataset"], prepare.corpus_options(config)


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


def _feature_files(dataset, data_dir, options, modality, name) -> str:
    """The feature file(s) one recording's modality was read from, for error messages."""
    if dataset == "iemocap":
        folder = Path(options["features_dir"]) / options[f"{modality}_features"]
        found = sorted(folder.glob(f"{name}.*"))
        return str(found[0] if found else folder / name)
    folders = options.get(f"{modality}_features") or [modality]
    return ", ".join(str(Path(data_dir) / folder / f"{name}.csv") for folder in folders)


def raw_settings_of(config: dict, config_source) -> dict:
    """A raw-mode run's input settings (sample rate, face crop shape, log-mel settings): recorded in
    config.json's `runtime.raw` by the trainer, else read from the run's artefact manifest."""
    recorded = (config.get("runtime") or {}).get("raw")
    if recorded:
        return recorded
    artifact_dir = (config.get("runtime") or {}).get("artifact_dir")
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
    out = _as_dict(recording)
    out.update({features.AUDIO: np.asarray(patches, np.float32), features.VISUAL: recording.faces})
    for key in ("faces", "waveform"):
        out.pop(key, None)
    return out


def _as_dict(recording) -> dict:
    return {field.name: getattr(recording, field.name) for field in dataclasses.fields(recording)}


# --------------------------------------------------------------------------- the run


def _summary_settings(args, config_source, dataset, options, delay_seconds) -> dict:
    model = (
        {"saved_model": str(Path(args.saved_model).resolve())}
        if args.saved_model
        else {"run_dir": str(Path(args.run_dir).resolve())}
    )
    model_file = Path(args.saved_model) / "saved_model.pb" if args.saved_model else Path(args.run_dir) / "model.keras"
    if model_file.is_file():
        stat = model_file.stat()
        model["file"] = [str(model_file.resolve()), stat.st_size, stat.st_mtime_ns]
    return {
        "format_version": FORMAT_VERSION,
        "model": model,
        "config": str(config_source),
        "data_dir": str(Path(args.data_dir).resolve()),
        "dataset": dataset,
        "options": {key: value for key, value in sorted(options.items())},
        "partition": args.partition,
        "label_delay_seconds": delay_seconds,
        "interval_level": None if args.no_intervals else args.level,
    }


def _check_output_dir(out_dir: Path, settings: dict, overwrite: bool) -> None:
    path = out_dir / SUMMARY_FILE
    if not path.is_file():
        return
    try:
        old = read_json(path)
    except ValueError:
        old = {}
    if overwrite:
        import shutil

        for item in out_dir.glob("*.csv"):
            item.unlink()
        for name in (EXTRA_FOLDER, PARTS_FOLDER, PLOTS_FOLDER):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        path.unlink()
        return
    if old.get("settings") != settings:
        changed = config_lib.first_difference(old.get("settings") or {}, settings) or "an older format"
        raise ConfigError(
            f"holds predictions made with other settings ({changed}); pass another --output-dir, "
            "or --overwrite to replace them",
            out_dir,
        )


def check_hop(corpus_hop, config: dict, config_source, data_dir) -> None:
    """Refuses a corpus whose frames are another hop apart than the model was trained at (its outputs
    would be meaningless, e.g. pinned near +-1). The trained hop is `runtime.hop` of the run's
    config.json; a run saved before the trainer recorded it counts as 0.1 s.

    Raises:
        DataError naming `data_dir`, both hops and the config.
    """
    from pipelines.runs import folders as runs

    trained = runs.trained_hop(config)
    if math.isclose(float(corpus_hop), trained, rel_tol=1e-6, abs_tol=1e-9):
        return
    recorded = (config.get("runtime") or {}).get("hop") is not None
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


def run(args) -> dict:
    """Predicts every selected recording; returns the summary written to `predict.json`."""
    if not args.run_dir and not args.saved_model:
        raise ConfigError("pass --run-dir RUN (a trained run) or --saved-model DIR (an exported model)")
    if not args.data_dir:
        raise ConfigError("--data-dir is required: the corpus folder to predict on")
    data_dir = Path(args.data_dir).expanduser()
    if not data_dir.is_dir():
        raise ConfigError("data folder does not exist (--data-dir)", data_dir)
    if args.saved_model and not (Path(args.saved_model) / "saved_model.pb").is_file():
        raise DataError(
            "not a SavedModel folder (no saved_model.pb); pass a version folder such as saved_models/NAME/1",
            args.saved_model,
        )
    if args.partition != ALL and args.partition not in features.PARTITIONS:
        raise ConfigError(
            f"--partition must be one of {', '.join(features.PARTITIONS)} or {ALL}, got {args.partition!r}"
        )
    config, config_source = reading_config(args.run_dir, args.saved_model)
    raw = config.get("mode") == "raw"
    raw_settings = raw_settings_of(config, config_source) if raw else None
    task = config.get("task", "regression")
    delay_seconds = delay_lib.check(
        delay_lib.seconds_of(config) if args.label_delay is None else args.label_delay, "--label-delay"
    )
    dataset, options = corpus_settings(config, args)
    out_dir = Path(args.output_dir)
    settings = _summary_settings(args, config_source, dataset, options, delay_seconds)
    _check_output_dir(out_dir, settings, args.overwrite)

    sequence_level = dataset == "iemocap"
    wanted = (lambda partition: True) if args.partition == ALL else (lambda partition: partition == args.partition)
    seen = []  # every selected recording, finished or not, in corpus order

    def select(name, partition):
        if not wanted(partition):
            return False
        seen.append(name)
        return not _finished(out_dir, name, sequence_level, args.plot)

    if raw:
        corpus = open_raw_for_prediction(data_dir, select)
    else:
        corpus = open_for_prediction(dataset, data_dir, options, select)
    if corpus.mode != ("raw" if raw else "features"):
        held = "face crops and audio (a raw corpus)" if corpus.mode == "raw" else "per-frame features"
        raise ConfigError(f"holds {held}, but the model is a {'raw-mode' if raw else 'feature'} model", data_dir)
    check_hop(corpus.hop, config, config_source, data_dir)  # before the model loads
    frames = delay_lib.delay_frames(delay_seconds, corpus.hop)
    predictor = SavedModelPredictor(args.saved_model) if args.saved_model else KerasPredictor(args.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"settings": settings, "complete": False}
    write_json_atomic(out_dir / SUMMARY_FILE, summary)

    from tqdm import tqdm

    from pipelines.evaluation import uncertainty as uncertainty_lib

    level = None if args.no_intervals else args.level
    intervals_said = False
    written, skipped = 0, 0
    progress = tqdm(
        corpus.recordings(),
        total=corpus.report.get("selected"),
        desc="predict",
        unit="rec",
        file=sys.stderr,
        disable=args.quiet,
    )
    try:
        for item in progress:
            if dataset == "iemocap" and not select(item.name, item.partition):
                skipped += wanted(item.partition)
                continue
            recording = raw_model_inputs(item, raw_settings, corpus.root) if raw else _as_dict(item)
            name = recording["name"]
            for modality in () if raw else features.MODALITIES:
                dim = int(np.shape(recording[modality])[-1])
                if dim != predictor.dims[modality]:
                    raise DataError(
                        f"{dim} {modality} features per frame, but the model takes "
                        f"{predictor.dims[modality]} (recording {name})",
                        _feature_files(dataset, data_dir, options, modality, name),
                    )
            outputs = delay_lib.shift_outputs(predictor(recording), frames)
            if sequence_level and f"{features.VALENCE}_utterance" not in outputs:
                raise ConfigError(
                    "the model gives no utterance-level outputs, so it cannot predict an IEMOCAP-style "
                    "corpus; train it on one first",
                    args.saved_model or args.run_dir,
                )
            if not intervals_said and task == "regression" and not sequence_level and level is not None:
                intervals_said = True
                if not any(key.endswith(uncertainty_lib.STD_SUFFIX) for key in outputs):
                    print(_no_intervals_hint(args), file=sys.stderr)
            _write_recording(recording, outputs, out_dir, task, sequence_level, level, args.plot)
            written += 1
            pause_point("predict.recording")
    finally:
        progress.close()  # before an interrupt's message, which is then the last line
    if dataset != "iemocap":
        skipped = len(seen) - written
    if not seen:
        counts = corpus.report.get("recordings") or {}
        which = "any partition" if args.partition == ALL else f"partition {args.partition!r}"
        raise DataError(
            f"no recordings of {which} in this corpus (found: "
            f"{', '.join(f'{k} {v}' for k, v in counts.items() if v) or 'none'})",
            data_dir,
        )
    files = _assemble_utterances(out_dir, seen) if sequence_level else [f"{name}.csv" for name in seen]
    summary.update(
        {
            "complete": True,
            "recordings": len(seen),
            "written": written,
            "skipped": skipped,
            "label_delay_frames": frames,
            "files": files,
        }
    )
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    print(f"predicted {len(seen)} recordings ({written} written, {skipped} already done) into {out_dir}")
    return summary


def _finished(out_dir: Path, name: str, sequence_level: bool, plot=False) -> bool:
    return all(path.is_file() for path in _targets(out_dir, name, sequence_level, plot))


def _targets(out_dir: Path, name: str, sequence_level, plot=False) -> list:
    if sequence_level:
        return [out_dir / PARTS_FOLDER / f"{name}.csv"]
    return [out_dir / EXTRA_FOLDER / f"{name}.csv", out_dir / f"{name}.csv"] + (
        [out_dir / PLOTS_FOLDER / f"{name}.png"] if plot else []
    )


def _main_values(outputs, task, key):
    value = np.asarray(outputs[key])
    return value.argmax(axis=-1) - 1 if task == "classification" else value


def main_columns(recording, outputs, task, level=None) -> dict:
    """The columns of a recording's prediction file: arousal and valence, their `level` interval
    (`*_lower`, `*_upper`, when the outputs carry a calibrated std and `level` is not None), and the
    presence flags of both modalities."""
    from pipelines.evaluation import uncertainty

    columns = {key: _main_values(outputs, task, key) for key in PREDICTIONS}
    if task == "regression" and level is not None:
        bounds = uncertainty.interval_bounds(outputs, level)
        for key in PREDICTIONS:
            if f"{key}_lower" in bounds:
                columns[f"{key}_lower"], columns[f"{key}_upper"] = bounds[f"{key}_lower"], bounds[f"{key}_upper"]
    if level is not None:
        num_frames = len(columns[features.VALENCE])
        for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT):
            value = recording.get(key)
            present = np.ones(num_frames) if value is None else np.asarray(value, np.float64)[:num_frames]
            columns[key] = np.round(present).astype(np.int64)
    return columns


def _write_recording(recording, outputs, out_dir: Path, task, sequence_level, level=None, plot=False) -> None:
    name = recording["name"]
    if sequence_level:
        row = {
            key: np.atleast_1d(_main_values(outputs, task, f"{key}_utterance")).reshape(-1)[:1] for key in PREDICTIONS
        }
        row.update(utterance_extra(outputs))
        write_text_atomic(out_dir / PARTS_FOLDER / f"{name}.csv", _table(name, [0.0], row))
        return
    num_frames = len(outputs[features.VALENCE])
    timestamps = frame_timestamps(recording, num_frames)
    write_text_atomic(out_dir / EXTRA_FOLDER / f"{name}.csv", _table(name, timestamps, extra_columns(outputs)))
    main = main_columns(recording, outputs, task, level)
    if plot:
        from pipelines.core.io_utils import write_bytes_atomic
        from pipelines.evaluation.figures import plot_recording

        shown = {**outputs, **{key: value for key, value in main.items() if key not in PREDICTIONS}}
        hop = float(recording.get("hop") or 0.1)
        write_bytes_atomic(out_dir / PLOTS_FOLDER / f"{name}.png", plot_recording(recording, shown, hop, title=name))
    write_text_atomic(out_dir / f"{name}.csv", _table(name, timestamps, main))


def _assemble_utterances(out_dir: Path, names) -> list:
    """utterances.csv (predictions) and utterances_extra.csv (mean of each extra output) from the parts."""
    main, extra = ["name;timestamp;arousal;valence"], None
    for name in names:
        lines = (out_dir / PARTS_FOLDER / f"{name}.csv").read_text().splitlines()
        header, row = lines[0].split(";"), lines[1].split(";")
        main.append(";".join(row[:4]))
        if extra is None:
            extra = [";".join(header[:2] + header[4:])]
        extra.append(";".join(row[:2] + row[4:]))
    write_text_atomic(out_dir / "utterances_extra.csv", "\n".join(extra) + "\n")
    write_text_atomic(out_dir / "utterances.csv", "\n".join(main) + "\n")
    return ["utterances.csv", "utterances_extra.csv"]


# --------------------------------------------------------------------------- command line


def _level(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _no_intervals_hint(args) -> str:
    if args.saved_model:
        return (
            f"note: {args.saved_model} gives no calibrated std, so the predictions have no intervals; export the "
            "run again after python -m pipelines.uncertainty --run-dir RUN (runs trained now have it)"
        )
    return (
        f"note: {args.run_dir} has no uncertainty calibration (trained before the trainer fitted one), so the "
        f"predictions have no intervals; add it with python -m pipelines.uncertainty --run-dir {args.run_dir}"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.predict",
        description="Predict valence and arousal for every recording of a corpus folder, labelled or not, and "
        "write AVEC-format files (one CSV per recording, plus the fusion weights, sigma norms and "
        "uncertainty in extra/). Example: python -m pipelines.predict --run-dir runs/avec_cold_fusion_"
        "regression --data-dir AVEC2019_CES --partition test --output-dir submission",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument(
        "--run-dir",
        help="run directory written by pipelines.train (its model.keras, unless "
        "--saved-model is given, and its config.json)",
    )
    parser.add_argument(
        "--saved-model",
        metavar="DIR",
        help="an exported SavedModel version folder (saved_models/NAME/VERSION), run with plain "
        "TensorFlow; the reading settings come from its assets.extra/config.json or --run-dir",
    )
    parser.add_argument("--data-dir", help="corpus folder to predict on, in the layout of --dataset")
    parser.add_argument("--dataset", choices=tuple(ADAPTERS), help="layout of --data-dir (default: the run's dataset)")
    parser.add_argument(
        "--partition", default=features.TEST, help=f"partition to predict: {', '.join(features.PARTITIONS)} or {ALL}"
    )
    parser.add_argument("--output-dir", required=True, help="folder for the prediction files (the submission)")
    parser.add_argument("--audio-features", help="comma-separated audio feature folders (default: the run's)")
    parser.add_argument("--visual-features", help="comma-separated visual feature folders (default: the run's)")
    parser.add_argument("--features-dir", help="IEMOCAP: folder of per-utterance feature files (default: the run's)")
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="zero-fill a modality whose feature file is missing (presence 0) instead of failing",
    )
    parser.add_argument(
        "--label-delay",
        type=cli.non_negative_float,
        metavar="SECONDS",
        help="annotation delay the model was trained with (default: the run's "
        "training.label_delay_seconds); outputs are shifted back by it",
    )
    parser.add_argument(
        "--level",
        type=_level,
        default=0.9,
        help="coverage of the intervals in the prediction files (*_lower, *_upper), strictly between 0 and 1",
    )
    parser.add_argument(
        "--no-intervals",
        action="store_true",
        help="write AVEC's four submission columns only (name;timestamp;arousal;valence), no intervals or presence",
    )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also draw a timeline per recording (plots/<name>.png): predictions with interval bands, fusion "
        "weights, absent frames shaded",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace predictions made with other settings")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only (the folder is made once the corpus and the model are read), before TensorFlow starts.
    cli.check_output_dir(args.output_dir, "--output-dir", create=False)
    run(args)
