"""Whole-recording prediction and scoring, shared by the trainer and the evaluator.

Scores: CCC over all recordings of a partition concatenated (AVEC's
way, as AVEC 2019's calc_scores.py: covariance / n, variances / (n - 1)); classification adds macro
precision/recall/F1 and the expected calibration error before and after temperature scaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cold_keras import metrics as cmetrics
from pipelines.core.io_utils import write_text_atomic
from pipelines.data import features
from pipelines.data.labels import to_classes  # the training targets' bins, also for scoring

BRANCH_PREFIXES = features.BRANCH_PREFIXES


def branches_of(output_names) -> list:
    """The branches a model reports: `av` (its main output) and any unimodal branches."""
    names = set(output_names)
    return [
        branch
        for branch, prefix in BRANCH_PREFIXES.items()
        if f"{prefix}{features.VALENCE}" in names and f"{prefix}{features.AROUSAL}" in names
    ]


def has_presence_inputs(model) -> bool:
    """Whether `model` takes the presence flags (models saved before they existed do not)."""
    names = {layer.name for layer in model.layers}
    return all(key in names for key in features.PRESENT_KEYS.values())


def model_inputs(model, audio, visual, mask, audio_present=None, visual_present=None) -> dict:
    """The input dict of one batch for `model`: features, mask and, when it takes them, the flags.

    A flag left at None is all ones (every frame present).
    """
    inputs = {features.AUDIO: audio, features.VISUAL: visual, features.MASK: mask}
    if has_presence_inputs(model):
        for key, value in ((features.AUDIO_PRESENT, audio_present), (features.VISUAL_PRESENT, visual_present)):
            inputs[key] = np.ones(np.shape(mask), np.float32) if value is None else np.asarray(value, np.float32)
    return inputs


def predict_recordings(inference_model, recordings, *, max_frames_per_call=None, progress=None, total=None):
    """Runs the inference model on whole recordings, one at a time.

    Args:
        inference_model: keras.Model taking `audio`, `visual`, `mask` (and the presence flags,
            fed from the recordings' `audio_present` / `visual_present` when they have them).
        recordings: iterable of dicts from `input_pipeline.iter_recordings`.
        progress: optional str. Show a progress bar with this description.
        total: optional int. Number of recordings (for the progress bar).

    Returns:
        list of dicts: the recording fields plus `outputs`, a dict of numpy arrays without the
        batch axis ([N] or [N, 3] per frame; `*_utterance` outputs as scalars or [3]).
    """
    results = []
    if progress:
        from pipelines.core import cli

        recordings = cli.progress_bar(recordings, progress, total=total)
    for recording in recordings:
        audio = np.asarray(recording[features.AUDIO], np.float32)[None]
        visual = np.asarray(recording[features.VISUAL], np.float32)[None]
        mask = np.ones(audio.shape[:2], np.float32)
        presence = [
            None if recording.get(key) is None else np.asarray(recording[key], np.float32)[None]
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        ]
        # predict_on_batch runs a compiled function (eager RNN calls are ~100x slower).
        outputs = inference_model.predict_on_batch(model_inputs(inference_model, audio, visual, mask, *presence))
        outputs = {name: np.asarray(value, np.float32)[0] for name, value in outputs.items()}
        results.append({**recording, "outputs": outputs})
    return results


def _labels(recording, key, sequence_level):
    value = recording[key]
    if value is None:
        return None
    value = np.asarray(value, np.float32)
    return value.reshape(-1)[:1] if sequence_level else value.reshape(-1)


def _prediction(recording, output_name, sequence_level):
    outputs = recording["outputs"]
    if sequence_level:
        return np.asarray(outputs[f"{output_name}_utterance"])[None]
    return np.asarray(outputs[output_name])


def collect(predictions, output_name, label_key, sequence_level):
    """Concatenates one output and its labels over all recordings of a partition."""
    ys, ps = [], []
    for recording in predictions:
        label = _labels(recording, label_key, sequence_level)
        if label is None:
            continue
        ys.append(label)
        ps.append(_prediction(recording, output_name, sequence_level))
    if not ys:
        return None, None
    return np.concatenate(ys), np.concatenate(ps)


def score_partition(predictions, *, task, sequence_level=False, temperatures=None):
    """Scores every branch of a partition's predictions.

    Args:
        predictions: list from `predict_recordings`.
        task: "regression" or "classification".
        sequence_level: bool. Score the utterance outputs against utterance labels.
        temperatures: optional dict "<branch>_<dimension>" -> T for the `ece_ts_*` figures
            (fitted on the validation partition); None fits T on this partition itself.

    Returns:
        (scores, fitted_temperatures): scores is {branch: {metric: value}}.
    """
    if not predictions:
        return {}, {}
    scores, fitted = {}, {}
    for branch in branches_of(predictions[0]["outputs"]):
        prefix = BRANCH_PREFIXES[branch]
        row = {}
        for dim in features.LABEL_KEYS:
            y, p = collect(predictions, f"{prefix}{dim}", dim, sequence_level)
            if y is None:
                continue
            if task == "regression":
                row[f"ccc_{dim}"] = float(cmetrics.ccc(y, p))
                continue
            labels = to_classes(y)
            # Frame outputs are logits, utterance outputs log-probabilities: both work as logits.
            logits = np.asarray(p, np.float64).reshape(-1, features.NUM_CLASSES)
            predicted = logits.argmax(axis=-1)
            precision, recall, f1 = cmetrics.precision_recall_f1(labels, predicted, features.NUM_CLASSES)
            row[f"precision_{dim}"] = float(precision)
            row[f"recall_{dim}"] = float(recall)
            row[f"f1_{dim}"] = float(f1)
            row[f"ece_{dim}"] = float(cmetrics.expected_calibration_error(cmetrics.softmax(logits), labels))
            key = f"{branch}_{dim}"
            if temperatures and key in temperatures:
                temperature = temperatures[key]
            else:
                temperature = float(cmetrics.temperature_scale(logits, labels))
            fitted[key] = temperature
            scaled = cmetrics.softmax(np.asarray(cmetrics.apply_temperature(logits, temperature)))
            row[f"ece_ts_{dim}"] = float(cmetrics.expected_calibration_error(scaled, labels))
            row[f"temperature_{dim}"] = float(temperature)
        if task == "regression" and row:
            row["ccc_mean"] = float(np.mean([row[f"ccc_{d}"] for d in features.LABEL_KEYS if f"ccc_{d}" in row]))
        elif row:
            for stat in ("precision", "recall", "f1", "ece", "ece_ts"):
                values = [row[f"{stat}_{d}"] for d in features.LABEL_KEYS if f"{stat}_{d}" in row]
                row[f"{stat}_macro" if stat in ("precision", "recall", "f1") else f"{stat}_mean"] = float(
                    np.mean(values)
                )
        scores[branch] = row
    return scores, fitted


def write_prediction_csvs(predictions, out_dir, *, task, sequence_level=False):
    """Writes the fused predictions in AVEC's CSV format: `name;timestamp;arousal;valence`.

    Frame-level corpora get one file per recording (`<name>.csv`, names quoted as in AVEC's
    label files). Sequence-level corpora get one `utterances.csv` with a row per utterance.
    Classification writes the predicted bin as -1, 0 or 1.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def value_of(output):
        output = np.asarray(output)
        if task == "classification":
            return output.argmax(axis=-1) - 1
        return output

    def render(rows):
        lines = ["name;timestamp;arousal;valence"]
        for name, timestamp, arousal, valence in rows:
            fmt = "{:d}" if task == "classification" else "{:.6f}"
            lines.append(f"'{name}';{timestamp:.2f};{fmt.format(arousal)};{fmt.format(valence)}")
        return "\n".join(lines) + "\n"

    if sequence_level:
        rows = []
        for recording in predictions:
            outputs = recording["outputs"]
            rows.append(
                (
                    recording["name"],
                    0.0,
                    value_of(outputs[f"{features.AROUSAL}_utterance"]).item(),
                    value_of(outputs[f"{features.VALENCE}_utterance"]).item(),
                )
            )
        write_text_atomic(out_dir / "utterances.csv", render(rows))
        return
    for recording in predictions:
        outputs = recording["outputs"]
        arousal = value_of(outputs[features.AROUSAL])
        valence = value_of(outputs[features.VALENCE])
        timestamps = recording.get("timestamps")
        if timestamps is None or len(timestamps) != len(arousal):
            timestamps = np.arange(len(arousal)) * float(recording.get("hop", 0.1))
        rows = [(recording["name"], float(t), a.item(), v.item()) for t, a, v in zip(timestamps, arousal, valence)]
        write_text_atomic(out_dir / f"{recording['name']}.csv", render(rows))


TABLE_LEGENDS = {
    "regression": (
        "ccc_valence, ccc_arousal: concordance correlation coefficient (CCC) of each dimension; "
        "ccc_mean: CCC mean of valence and arousal"
    ),
    "classification": (
        "precision_macro, recall_macro, f1_macro: macro average over the 3 classes, mean of "
        "valence and arousal; ece_mean: expected calibration error; ece_ts_mean: ECE after "
        "temperature scaling fitted on the validation partition"
    ),
}
BRANCH_LEGEND = "branch av: the fused (audio + visual) output; audio, visual: the unimodal branches"


def format_table(metrics: dict, task: str, legend: bool = True) -> str:
    """A readable table: one row per partition and branch; the columns carry the names of
    metrics.json (the names `pipelines.compare` uses too), explained by a legend underneath."""
    if task == "regression":
        columns = ["ccc_valence", "ccc_arousal", "ccc_mean"]
    else:
        columns = ["precision_macro", "recall_macro", "f1_macro", "ece_mean", "ece_ts_mean"]
    header = f"{'partition':<10} {'branch':<7} " + " ".join(f"{key:>15}" for key in columns)
    lines = [header, "-" * len(header)]
    for partition, by_branch in metrics.items():
        for branch, row in by_branch.items():
            cells = " ".join(f"{row[key]:>15.4f}" if row.get(key) is not None else f"{'-':>15}" for key in columns)
            lines.append(f"{partition:<10} {branch:<7} {cells}")
    if legend:
        lines += [f"  {TABLE_LEGENDS[task]}", f"  {BRANCH_LEGEND}"]
    return "\n".join(lines)
