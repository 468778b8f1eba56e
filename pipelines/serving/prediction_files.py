"""The files a prediction writes: what `pipelines.serving.predict` makes of a model's outputs.

For per-frame corpora (AVEC, synthetic), per recording:

    OUT/<name>.csv          name;timestamp;arousal;valence, then the intervals and the presence flags
                            (`main_columns`)
    OUT/extra/<name>.csv    name;timestamp;<every other per-frame output of the model> (`extra_columns`)
    OUT/plots/<name>.png    with --plot: the predictions with their interval bands, the fusion weights, and
                            the frames where a modality is absent shaded

Sequence-level corpora (IEMOCAP) get one part file per utterance (`OUT/.utterances/<name>.csv`), assembled
into `OUT/utterances.csv` and `OUT/utterances_extra.csv` at the end (`assemble_utterances`). Every file is
written atomically, the prediction file last, so a recording whose files exist is finished (`finished`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.io_utils import write_text_atomic
from pipelines.data import features

EXTRA_FOLDER = "extra"
PLOTS_FOLDER = "plots"
PARTS_FOLDER = ".utterances"
PREDICTIONS = (features.AROUSAL, features.VALENCE)
PREDICTIONS_BOUNDS = tuple(f"{key}{side}" for key in PREDICTIONS for side in ("_lower", "_upper"))


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


def _main_values(outputs, task, key):
    value = np.asarray(outputs[key])
    return value.argmax(axis=-1) - 1 if task == "classification" else value


def main_columns(recording, outputs, task, level=None) -> dict:
    """The columns of a recording's prediction file: arousal and valence, their `level` interval
    (`*_lower`, `*_upper`, when `level` is not None: the conformal bounds the outputs carry, else
    mu -+ z std of a calibrated std), and the presence flags of both modalities."""
    from pipelines.evaluation import uncertainty

    columns = {key: _main_values(outputs, task, key) for key in PREDICTIONS}
    if task == "regression" and level is not None:
        bounds = uncertainty.interval_bounds(outputs, level)
        bounds.update({k: outputs[k] for k in PREDICTIONS_BOUNDS if k in outputs})
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


# --------------------------------------------------------------------------- files


def finished(out_dir: Path, name: str, sequence_level: bool, plot=False) -> bool:
    """True when every file of recording `name` is written (the prediction file is written last)."""
    return all(path.is_file() for path in _targets(out_dir, name, sequence_level, plot))


def _targets(out_dir: Path, name: str, sequence_level, plot=False) -> list:
    if sequence_level:
        return [out_dir / PARTS_FOLDER / f"{name}.csv"]
    return [out_dir / EXTRA_FOLDER / f"{name}.csv", out_dir / f"{name}.csv"] + (
        [out_dir / PLOTS_FOLDER / f"{name}.png"] if plot else []
    )


def write_recording(recording, outputs, out_dir: Path, task, sequence_level, level=None, plot=False) -> None:
    """Writes the files of one recording: its extra columns, its plot (`plot`), its prediction file last;
    for a sequence-level corpus its part file."""
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


def assemble_utterances(out_dir: Path, names) -> list:
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
