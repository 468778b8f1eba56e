"""The uncertainty score u of a frame (larger = less reliable) and the predictors that produce it.

* `native`: COLD fusion's ||sigma_m|| read by the run's weight convention (1/||sigma_m|| under
  `informativeness`, ||sigma_m|| under `uncertainty`); the fused output's score is the fusion-weighted
  mean w_A u_A + w_V u_V. A model without sigma has a constant score. The prediction is the
  deterministic pass (`pipelines.evaluation.scoring.predict_recordings`).
* `mc_dropout`: the std over N stochastic passes with dropout on (`predict_mc_dropout`; the
  prediction is their mean).
* `ensemble`: the std of the members' predictions (`predict_ensemble`; the prediction is their mean).

The spread of the last two is an output of its own, `<prediction>_spread`. The score becomes a
standard deviation in label units through the calibration of `pipelines.evaluation.uncertainty`.
"""

from __future__ import annotations

import numpy as np

from pipelines.core.errors import ConfigError
from pipelines.data import features

DEFAULT_PASSES = 20
SPREAD_SUFFIX = "_spread"
BRANCH_PREFIXES = features.BRANCH_PREFIXES


# --------------------------------------------------------------------------- scores


def branches_in(outputs) -> list:
    return [
        branch
        for branch, prefix in BRANCH_PREFIXES.items()
        if all(f"{prefix}{dim}" in outputs for dim in features.LABEL_KEYS)
    ]


def uncertainty_scores(outputs, method="native", convention="informativeness") -> dict:
    """{"<branch>_<dim>": score [N]} of one recording's outputs (larger = less reliable)."""
    n = len(np.asarray(outputs[features.VALENCE]))
    scores = {}
    if method in ("mc_dropout", "ensemble"):
        for branch in branches_in(outputs):
            for dim in features.LABEL_KEYS:
                key = f"{BRANCH_PREFIXES[branch]}{dim}{SPREAD_SUFFIX}"
                if key not in outputs:
                    raise ConfigError(
                        f"{method} uncertainty needs the output {key!r} (predict with "
                        f"pipelines.evaluation.uncertainty_scores.predict_{method})"
                    )
                scores[f"{branch}_{dim}"] = np.asarray(outputs[key], np.float64).reshape(-1)
        return scores
    per_branch = {}
    sigma = {m: outputs.get(f"{m}_sigma_norm") for m in features.MODALITIES}
    if all(value is not None for value in sigma.values()):
        for m in features.MODALITIES:
            norm = np.maximum(np.asarray(sigma[m], np.float64).reshape(-1), 1e-12)
            per_branch[m] = 1.0 / norm if convention == "informativeness" else norm
        weights = [outputs.get(f"{m}_weight") for m in features.MODALITIES]
        if all(w is not None for w in weights):
            per_branch["av"] = sum(
                np.asarray(w, np.float64).reshape(-1) * per_branch[m] for w, m in zip(weights, features.MODALITIES)
            )
        else:
            per_branch["av"] = (per_branch[features.AUDIO] + per_branch[features.VISUAL]) / 2.0
    for branch in branches_in(outputs):
        score = per_branch.get(branch, np.ones(n))
        for dim in features.LABEL_KEYS:
            scores[f"{branch}_{dim}"] = score
    return scores


def score_description(method, convention, has_sigma) -> str:
    if method == "mc_dropout":
        return "std of the predictions over the stochastic passes (dropout on)"
    if method == "ensemble":
        return "std of the members' predictions"
    if not has_sigma:
        return "constant (the model outputs no uncertainty: one interval width for every frame)"
    inverse = convention == "informativeness"
    unimodal = "1/||sigma_m||" if inverse else "||sigma_m||"
    return f"{unimodal} per modality ({convention} convention); fused: w_A u_A + w_V u_V"


# --------------------------------------------------------------------------- MC dropout and ensembles


def _combine(samples) -> dict:
    """Mean of every output over the samples, plus `<prediction>_spread` (std, ddof=0) of the
    valence/arousal outputs of every branch."""
    outputs = {name: np.mean([s[name] for s in samples], axis=0).astype(np.float32) for name in samples[0]}
    for branch in branches_in(samples[0]):
        for dim in features.LABEL_KEYS:
            name = f"{BRANCH_PREFIXES[branch]}{dim}"
            outputs[name + SPREAD_SUFFIX] = np.std([s[name] for s in samples], axis=0).astype(np.float32)
    return outputs


def predict_mc_dropout(inference_model, recordings, passes=DEFAULT_PASSES, seed=0, progress=False) -> list:
    """MC dropout: `passes` stochastic forward passes per recording with dropout on (`training=True`,
    one batch of `passes` copies, so every copy draws its own masks); outputs are the mean of the passes
    and `*_spread` their std. Works for any model with dropout (a model without any gives zero spread).
    """
    import keras
    import tensorflow as tf

    from pipelines.evaluation import scoring as evaluation

    if passes < 2:
        raise ConfigError(f"--mc-passes must be >= 2, got {passes}")
    keras.utils.set_random_seed(int(seed))

    @tf.function(reduce_retracing=True)
    def stochastic(inputs):
        return inference_model(inputs, training=True)

    results = []
    iterator = recordings
    if progress:
        from tqdm import tqdm

        iterator = tqdm(list(recordings), desc=f"MC dropout ({passes} passes)", unit="recording")
    for recording in iterator:
        audio = np.repeat(np.asarray(recording[features.AUDIO], np.float32)[None], passes, axis=0)
        visual = np.repeat(np.asarray(recording[features.VISUAL], np.float32)[None], passes, axis=0)
        mask = np.ones(audio.shape[:2], np.float32)
        presence = [
            None
            if recording.get(key) is None
            else np.repeat(np.asarray(recording[key], np.float32)[None], passes, axis=0)
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        ]
        outputs = stochastic(evaluation.model_inputs(inference_model, audio, visual, mask, *presence))
        samples = [
            {
                name: np.asarray(value, np.float32)[i]
                for name, value in outputs.items()
                if not name.endswith("_utterance")
            }
            for i in range(passes)
        ]
        results.append({**recording, "outputs": _combine(samples)})
    return results


def predict_ensemble(inference_models, recordings) -> list:
    """Deep ensemble: every member predicts every recording; outputs are the members' mean and
    `*_spread` their std."""
    from pipelines.evaluation import scoring as evaluation

    recordings = list(recordings)
    per_member = [evaluation.predict_recordings(model, recordings) for model in inference_models]
    results = []
    for i, recording in enumerate(recordings):
        names = set.intersection(*(set(p[i]["outputs"]) for p in per_member))
        samples = [{n: p[i]["outputs"][n] for n in names if not n.endswith("_utterance")} for p in per_member]
        results.append({**recording, "outputs": _combine(samples)})
    return results


def predictor(method, *, passes=DEFAULT_PASSES, seed=0):
    """A `predict(inference_model, recordings)` for `method` (native: the deterministic pass)."""
    from pipelines.evaluation import scoring as evaluation

    if method == "mc_dropout":
        return lambda model, recordings, **progress: predict_mc_dropout(model, recordings, passes, seed)
    if method == "native":
        return evaluation.predict_recordings
    raise ConfigError(
        f"--uncertainty must be native or mc_dropout for one run (ensembles: python -m "
        f"pipelines.ensemble), got {method!r}"
    )
