"""The evaluator's diagnostics: per-recording scores, uncertainty vs error, fusion weights, reliability bins.

* `per_recording_scores`: CCC (regression) or macro F1 (classification) of every recording.
* `uncertainty_diagnostics`: per modality the Spearman correlation of 1/||sigma|| (and of the fusion
  weight) with that modality's per-frame error (`frame_errors`).
* `weight_diagnostics`: the fusion weight on corrupted vs clean frames and the ROC AUC of (1 - w_m) as
  a detector of corrupted frames (the synthetic corpus's ground truth, and the evaluator's own corruption).
* `reliability`: reliability-diagram bins and ECE of a classification run, before and after
  temperature scaling.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.data import features

NUM_BINS = 10
# Expected sign of spearman(1/||sigma||, error) when the calibration term works as trained: the
# paper's convention makes s = 1/||sigma|| follow the error, the `uncertainty` one makes ||sigma|| follow it.
EXPECTED_SIGN = {"informativeness": 1.0, "uncertainty": -1.0}


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _frame_labels(recording, dim, num_frames):
    # Sequence-level corpora broadcast the utterance label to every frame, as the losses do.
    return np.broadcast_to(np.asarray(recording[dim], np.float64), (num_frames,))


def frame_errors(recording, modality, task) -> np.ndarray:
    """Per-frame distance of one modality's prediction: the quantity the calibration term ranks.

    Regression: squared error averaged over valence and arousal. Classification: cross-entropy of
    the unimodal logits with the label's bin, averaged over the two dimensions.
    """
    from pipelines.evaluation import scoring as evaluation

    outputs = recording["outputs"]
    num_frames = len(outputs[f"{modality}_{features.VALENCE}"])
    per_dim = []
    for dim in features.LABEL_KEYS:
        labels = _frame_labels(recording, dim, num_frames)
        prediction = np.asarray(outputs[f"{modality}_{dim}"], np.float64)
        if task == "regression":
            per_dim.append((labels - prediction) ** 2)
        else:
            classes = evaluation.to_classes(labels)
            per_dim.append(-np.take_along_axis(_log_softmax(prediction), classes[:, None], axis=-1)[:, 0])
    return np.mean(per_dim, axis=0)


# --------------------------------------------------------------------------- diagnostics


def per_recording_scores(predictions, task) -> list:
    """One row per recording: CCC (regression) or macro F1 (classification) per branch and dimension.

    Returns:
        list of dicts with `name`, `num_frames` and `<branch>_<metric>_<dimension>` plus
        `<branch>_ccc_mean` / `<branch>_f1_macro` (the names of metrics.json; metric `ccc` or `f1`).
    """
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import scoring as evaluation

    metric = "ccc" if task == "regression" else "f1"
    rows = []
    for recording in predictions:
        outputs = recording["outputs"]
        row = {"name": recording["name"], "num_frames": int(len(outputs[features.VALENCE]))}
        for branch in evaluation.branches_of(outputs):
            prefix = evaluation.BRANCH_PREFIXES[branch]
            values = []
            for dim in features.LABEL_KEYS:
                labels = np.asarray(recording[dim], np.float64).reshape(-1)
                prediction = np.asarray(outputs[f"{prefix}{dim}"])
                if task == "regression":
                    value = cmetrics.ccc(labels, prediction)
                else:
                    value = cmetrics.precision_recall_f1(
                        evaluation.to_classes(labels), prediction.argmax(axis=-1), features.NUM_CLASSES
                    )[2]
                row[f"{branch}_{metric}_{dim}"] = float(value)
                values.append(value)
            row[f"{branch}_{'ccc_mean' if task == 'regression' else 'f1_macro'}"] = float(np.mean(values))
        rows.append(row)
    return rows


def uncertainty_diagnostics(predictions, task, convention="informativeness") -> dict:
    """Per modality: rank correlation of the model's uncertainty with its own per-frame error.

    For every modality whose sigma norm and unimodal prediction the model outputs, over all frames of
    the partition: spearman(1/||sigma_m||, d_m) with d_m from `frame_errors`, and, when the model
    outputs fusion weights, spearman(w_m, d_m) (negative = the weight drops where the modality errs).
    """
    from cold_keras import metrics as cmetrics

    if not predictions:
        return {}
    outputs = predictions[0]["outputs"]
    expected = EXPECTED_SIGN.get(convention, 1.0)
    report = {}
    for modality in features.MODALITIES:
        sigma_key, weight_key = f"{modality}_sigma_norm", f"{modality}_weight"
        if sigma_key not in outputs or f"{modality}_{features.VALENCE}" not in outputs:
            continue
        inverse = np.concatenate([1.0 / np.asarray(r["outputs"][sigma_key], np.float64) for r in predictions])
        errors = np.concatenate([frame_errors(r, modality, task) for r in predictions])
        rho, p_value = cmetrics.spearman(inverse, errors)
        entry = {
            "spearman_inverse_sigma_vs_error": rho,
            "p_value": p_value,
            "num_frames": int(errors.size),
            "error": "squared error" if task == "regression" else "cross-entropy",
            "meaning": _sign_meaning(rho, expected, convention),
        }
        if weight_key in outputs:
            weights = np.concatenate([np.asarray(r["outputs"][weight_key], np.float64) for r in predictions])
            entry["spearman_weight_vs_error"], entry["p_value_weight"] = cmetrics.spearman(weights, errors)
        report[modality] = entry
    return report


def _sign_meaning(rho, expected, convention):
    if not math.isfinite(rho):
        return "undefined (constant values or fewer than 3 frames)"
    direction = (
        "positive: frames with a larger 1/||sigma|| have larger errors"
        if rho > 0
        else "negative: frames with a larger 1/||sigma|| have smaller errors (||sigma|| grows with the error)"
        if rho < 0
        else "zero: no monotonic relation"
    )
    trained = "rise" if expected > 0 else "fall"
    verdict = "as" if rho * expected > 0 else "unlike what"
    return (
        f"{direction}; {verdict} the {convention} convention trains for (1/||sigma|| should {trained} with the error)"
    )


def _concat_flags(predictions, key):
    if not all(r.get(key) is not None for r in predictions):
        return None
    return np.concatenate([np.asarray(r[key], bool).reshape(-1) for r in predictions])


def weight_diagnostics(predictions) -> dict:
    """Fusion weights on corrupted vs clean frames and the AUC of (1 - w_m) as a corruption detector.

    Sources of the corrupted frames of modality m: `corpus` (`<m>_corrupted`, the synthetic corpus's
    ground truth) and `evaluator` (`<m>_corrupted_eval`, from `--corrupt`). Clean frames are frames
    that neither source corrupted, so a frame corrupted by the other source is left out of both groups.

    Returns:
        {source: {modality: {mean_weight_corrupted, mean_weight_clean, auc, num_corrupted, num_clean}}}.
    """
    from cold_keras import metrics as cmetrics

    if not predictions:
        return {}
    report = {}
    for modality in features.MODALITIES:
        weight_key = f"{modality}_weight"
        if weight_key not in predictions[0]["outputs"]:
            continue
        weights = np.concatenate([np.asarray(r["outputs"][weight_key], np.float64) for r in predictions])
        sources = {
            "corpus": _concat_flags(predictions, f"{modality}_corrupted"),
            "evaluator": _concat_flags(predictions, f"{modality}_corrupted_eval"),
        }
        for source, flags in sources.items():
            if flags is None:
                continue
            other = sources["evaluator" if source == "corpus" else "corpus"]
            clean = ~flags if other is None else ~flags & ~other
            keep = flags | clean
            entry = {
                "mean_weight_corrupted": float(weights[flags].mean()) if flags.any() else float("nan"),
                "mean_weight_clean": float(weights[clean].mean()) if clean.any() else float("nan"),
                "auc": cmetrics.roc_auc(1.0 - weights[keep], flags[keep]),
                "num_corrupted": int(flags.sum()),
                "num_clean": int(clean.sum()),
            }
            report.setdefault(source, {})[modality] = entry
    return report


def reliability(predictions, temperatures, sequence_level, num_bins=NUM_BINS) -> dict:
    """Reliability-diagram bins per branch and dimension, before and after temperature scaling."""
    from cold_keras import metrics as cmetrics
    from pipelines.evaluation import scoring as evaluation

    report = {}
    for branch in evaluation.branches_of(predictions[0]["outputs"]):
        prefix = evaluation.BRANCH_PREFIXES[branch]
        for dim in features.LABEL_KEYS:
            y, logits = evaluation.collect(predictions, f"{prefix}{dim}", dim, sequence_level)
            if y is None:
                continue
            logits = np.asarray(logits, np.float64).reshape(-1, features.NUM_CLASSES)
            labels = evaluation.to_classes(y)
            temperature = float(temperatures[f"{branch}_{dim}"])
            entry = {"temperature": temperature}
            for name, scaled in (("before", logits), ("after", cmetrics.apply_temperature(logits, temperature))):
                probs = np.exp(_log_softmax(scaled))
                bins = cmetrics.reliability_bins(probs, labels, num_bins)
                entry[name] = {
                    "confidence": bins.confidence.tolist(),
                    "accuracy": bins.accuracy.tolist(),
                    "count": bins.count.tolist(),
                    "ece": cmetrics.expected_calibration_error(probs, labels, num_bins),
                }
            report[f"{branch}_{dim}"] = entry
    return report
