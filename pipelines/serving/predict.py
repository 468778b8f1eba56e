"""Predicting (`python -m pipelines.predict`): runs a trained model on the recordings of a corpus folder,
labelled or not, and writes AVEC-format files.

`run` goes through the recordings with the pieces of its neighbours: `prediction_inputs` reads the
run's settings and the corpus, `predictors` runs the model, `prediction_files` writes the files; this
module keeps `predict.json`, the record of what was predicted from what.

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

The intervals are the run's conformal intervals (`conformal_calibration.json`, which the trainer
writes at the end of every frame-level regression run; `pipelines.evaluation.intervals`) at `--level`
(0.9 by default; fitted at 0.5, 0.8, 0.9 and 0.95), or an exported model's `*_lower` / `*_upper`
outputs (90%). A run trained before the conformal fit existed falls back to its isotonic calibration
(`uncertainty_calibration.json`) or an exported model's `*_std` outputs: mu -+ z std with z the
Gaussian quantile of `--level`; `python -m pipelines.uncertainty --run-dir RUN` adds both files. A frame with
`visual_present` 0 had no visual input (e.g. no face found), and the model fused audio alone there.

The timestamps are the label file's, or the feature files' when there is none. With a label delay
(`training.label_delay_seconds`) the outputs are shifted back onto the labels' timeline first
(`pipelines.data.label_delay`). The extra file holds the unimodal predictions, the fusion weights, the
sigma norms and any uncertainty output (`*_std`, `*_lower`, `*_upper`), whatever the model gives
(`prediction_files.extra_columns`). Sequence-level corpora (IEMOCAP) get one table, `OUT/utterances.csv` (and
`OUT/utterances_extra.csv`), assembled from one part file per utterance.

Recordings are read, predicted and written one at a time (memory does not grow with the corpus);
every file is written atomically, the prediction file last, so an interrupted run loses nothing
written and a rerun skips the recordings whose files exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pipelines.config import files as config_lib
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.core.pause import pause_point
from pipelines.data import features
from pipelines.data import label_delay as delay_lib
from pipelines.serving import prediction_files, prediction_inputs, predictors

ALL = "all"
SUMMARY_FILE = "predict.json"
FORMAT_VERSION = 1


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
        for name in (prediction_files.EXTRA_FOLDER, prediction_files.PARTS_FOLDER, prediction_files.PLOTS_FOLDER):
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
    config, config_source = prediction_inputs.reading_config(args.run_dir, args.saved_model)
    raw = config.mode == "raw"
    raw_settings = prediction_inputs.raw_settings_of(config, config_source) if raw else None
    task = config.task
    delay_seconds = delay_lib.check(
        delay_lib.seconds_of(config) if args.label_delay is None else args.label_delay, "--label-delay"
    )
    dataset, options = prediction_inputs.corpus_settings(config, args)
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
        return not prediction_files.finished(out_dir, name, sequence_level, args.plot)

    if raw:
        corpus = prediction_inputs.open_raw_for_prediction(data_dir, select)
    else:
        corpus = prediction_inputs.open_for_prediction(dataset, data_dir, options, select)
    if corpus.mode != ("raw" if raw else "features"):
        held = "face crops and audio (a raw corpus)" if corpus.mode == "raw" else "per-frame features"
        raise ConfigError(f"holds {held}, but the model is a {'raw-mode' if raw else 'feature'} model", data_dir)
    prediction_inputs.check_hop(corpus.hop, config, config_source, data_dir)  # before the model loads
    frames = delay_lib.delay_frames(delay_seconds, corpus.hop)
    predictor = (
        predictors.SavedModelPredictor(args.saved_model)
        if args.saved_model
        else predictors.KerasPredictor(args.run_dir, None if args.no_intervals else args.level)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"settings": settings, "complete": False}
    write_json_atomic(out_dir / SUMMARY_FILE, summary)

    from tqdm import tqdm

    from pipelines.evaluation import intervals as intervals_lib
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
            recording = (
                prediction_inputs.raw_model_inputs(item, raw_settings, corpus.root)
                if raw
                else prediction_inputs.recording_dict(item)
            )
            name = recording["name"]
            for modality in () if raw else features.MODALITIES:
                dim = int(np.shape(recording[modality])[-1])
                if dim != predictor.dims[modality]:
                    raise DataError(
                        f"{dim} {modality} features per frame, but the model takes "
                        f"{predictor.dims[modality]} (recording {name})",
                        prediction_inputs.feature_files(dataset, data_dir, options, modality, name),
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
                elif f"{features.VALENCE}_lower" not in outputs and not args.saved_model:
                    print(intervals_lib.missing_hint(args.run_dir), file=sys.stderr)
                if args.saved_model and f"{features.VALENCE}_lower" in outputs and abs(level - 0.9) > 1e-9:
                    raise ConfigError(
                        f"--level {level:g}: the SavedModel's conformal intervals are 90% ones; leave --level out "
                        "or predict with --run-dir",
                        args.saved_model,
                    )
            prediction_files.write_recording(recording, outputs, out_dir, task, sequence_level, level, args.plot)
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
    files = prediction_files.assemble_utterances(out_dir, seen) if sequence_level else [f"{name}.csv" for name in seen]
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
