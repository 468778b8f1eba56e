"""The fusion guard: after training, each output dimension falls back to a unimodal branch when
that branch beats the fused output on the validation partition by more than `GUARD_MARGIN`.

Used by `pipelines.train` when `model.fusion_guard` is true (COLD fusion); the choice is stored in
the model (`cold_keras.layers.reliability.FusionGuard`) and in `fusion_guard.json` of the run.
`fused_losses` lists where a partition's fused output scores below a unimodal branch; the
evaluator reports it. `atypicality_references` takes the reference of `model.reliability_atypicality`
from the training partition before the model is built.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import DataError
from pipelines.core.io_utils import write_json_atomic
from pipelines.data import features

GUARD_MARGIN = 0.005  # CCC (regression) or F1 (classification)
GUARD_FILE = "fusion_guard.json"


def _score_key(task: str, dim: str) -> str:
    return f"ccc_{dim}" if task == "regression" else f"f1_{dim}"


def fused_losses(scores: dict, task: str, margin: float = 0.0) -> list:
    """[(dimension, branch, fused score, branch score)] where a unimodal branch beats the fused
    output by more than `margin`; `scores` is `evaluation.score_partition`'s {branch: {metric: value}}."""
    fused = scores.get("av") or scores.get("fused") or {}
    out = []
    for dim in features.LABEL_KEYS:
        key = _score_key(task, dim)
        if key not in fused:
            continue
        for branch in (features.AUDIO, features.VISUAL):
            value = (scores.get(branch) or {}).get(key)
            if value is not None and value > fused[key] + margin:
                out.append((dim, branch, float(fused[key]), float(value)))
    return out


def apply_fusion_guard(model, infer, recordings, task: str, sequence_level: bool, run_dir) -> dict:
    """Chooses, per dimension, the fused output or the branch that beats it on `recordings` (the
    validation partition) by more than GUARD_MARGIN; sets the model's guard; writes GUARD_FILE."""
    from pipelines.evaluation import scoring as evaluation

    guard = model.get_layer("fusion_guard")
    guard.choose(["fused"] * len(features.LABEL_KEYS))
    predictions = evaluation.predict_recordings(infer, recordings)
    scores, _ = evaluation.score_partition(predictions, task=task, sequence_level=sequence_level)
    choice = {dim: "fused" for dim in features.LABEL_KEYS}
    for dim, branch, fused, value in fused_losses(scores, task, GUARD_MARGIN):
        best = max(
            (b for b in (features.AUDIO, features.VISUAL)),
            key=lambda b: (scores.get(b) or {}).get(_score_key(task, dim), float("-inf")),
        )
        choice[dim] = best
    guard.choose([choice[dim] for dim in features.LABEL_KEYS])
    report = {
        "margin": GUARD_MARGIN,
        "choice": choice,
        "validation_scores": {
            branch: {key: value for key, value in row.items() if key.startswith(("ccc_", "f1_"))}
            for branch, row in scores.items()
        },
    }
    write_json_atomic(Path(run_dir) / GUARD_FILE, report)
    fallbacks = [f"{dim} -> {branch}" for dim, branch in choice.items() if branch != "fused"]
    print("fusion guard: " + (", ".join(fallbacks) if fallbacks else "the fused output kept for every dimension"))
    return report


def _standardised_recordings(artifact_dir, norms, partition):
    """Per recording of `partition` and per modality: (modality, z, present), z the `[N, D]`
    features standardised with the run's normalisation `norms` ({modality: (mean, variance)}) and,
    as in the model (`PresenceGate`), zero where the modality is absent; present `[N]` 0/1."""
    import numpy as np

    from pipelines.data import records

    for recording in records.iter_recordings(artifact_dir, partition):
        for modality in features.MODALITIES:
            mean, variance = norms[modality]
            values = np.asarray(recording[modality], np.float32)
            present = (np.asarray(recording[f"{modality}_present"], np.float32) > 0.5).astype(np.float32)
            yield modality, (values - mean) / np.maximum(np.sqrt(variance), 1e-7) * present[:, None], present


def standardised_features(artifact_dir, norms, partition=features.TRAIN) -> dict:
    """{modality: [[N, D] per recording]}: the features of `partition` standardised with the run's
    normalisation `norms` and zero where the modality is absent, as the model sees them
    (`PresenceGate`); the training data of `model.reliability_correspondence`'s pre-fit."""
    out = {modality: [] for modality in features.MODALITIES}
    for modality, z, _ in _standardised_recordings(artifact_dir, norms, partition):
        out[modality].append(z)
    return out


def atypicality_references(artifact_dir, norms, partition=features.TRAIN) -> dict:
    """{"audio_atypicality": {"center", "scale"}, "visual_atypicality": ...}: the reference of
    `cold_keras.layers.reliability.Atypicality` from the frames of `partition` (the training
    partition), standardised with the run's normalisation `norms` ({modality: (mean, variance)}),
    frames where a modality is absent left out. Fixed at build time, like the normalisation."""
    import numpy as np
    from keras import ops

    from cold_keras.layers.reliability import atypicality_reference, atypicality_signals

    signals = {modality: [] for modality in features.MODALITIES}
    for modality, z, present in _standardised_recordings(artifact_dir, norms, partition):
        if not present.any():
            continue
        out = ops.convert_to_numpy(atypicality_signals(z[None], present[None]))[0]
        signals[modality].append(out[present > 0])
    references = {}
    for modality, parts in signals.items():
        if not parts:
            raise DataError(
                f"model.reliability_atypicality: no {modality} frames in the {partition} partition to "
                "take the reference from",
                artifact_dir,
            )
        references[f"{modality}_atypicality"] = atypicality_reference(np.concatenate(parts))
    return references
