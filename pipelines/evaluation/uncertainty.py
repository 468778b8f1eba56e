"""Per-frame predictive uncertainty in label units: `python -m pipelines.uncertainty --run-dir RUN`.

A model's own uncertainty score is not an error bar: COLD's sigma is a latent-space scale, MC dropout's
and a deep ensemble's spread are in label units but not calibrated. For every branch (`av`, `audio`,
`visual`) and dimension this module fits, on the run's validation partition only, a monotone map

    std(u) = scale * g(u)

from the score u of a frame to a standard deviation of its error, and applies it anywhere:

* u, the uncertainty score (larger = less reliable):
  - `native`: COLD fusion's ||sigma_m|| read by the run's weight convention (1/||sigma_m|| under
    `informativeness`, where the calibration term makes it follow the error, ||sigma_m|| under
    `uncertainty`); the fused output's score is the fusion-weighted mean w_A u_A + w_V u_V. A model
    without sigma has a constant score (calibrated homoscedastic intervals, no ranking);
  - `mc_dropout`: the std over N stochastic passes with dropout on (the prediction is their mean);
  - `ensemble`: the std of the members' predictions (the prediction is their mean).
* g: isotonic (non-decreasing) regression of the absolute error |y - mu| on u (pool adjacent
  violators, `scipy.optimize.isotonic_regression`), kept as a piecewise-linear map through up to
  `NUM_KNOTS` knots at quantiles of u (constant beyond the validation range).
* scale: chosen so that the central 90% Gaussian interval mu +- 1.645 std covers 90% of the validation
  frames (the 0.9 quantile of |y - mu| / g(u), divided by 1.645; `scale_by="frames"`, the default), or
  90% of the frames of *every* validation recording (the largest of the recordings' 0.9 quantiles;
  `scale_by="recordings"`, `--scale-by recordings`). Frames of one recording share a speaker and a
  session, so a pooled quantile over a few validation recordings carries their particular difficulty;
  the per-recording scale asks the intervals to hold for the hardest of them, which guards against
  test recordings harder than the validation pool (wider intervals). The Gaussian link
  E|e| = std sqrt(2/pi) would instead give scale = sqrt(pi/2); it is stored next to it
  (`scale_gaussian`) for reference.
* fitted on: the validation partition, clean; with `--fit-corrupt visual:0.5:dropout,...` also on a
  corrupted copy of it per spec (`with_corrupted_copies`). A clean validation partition shows the map
  only the low end of the scores; damaged frames show how far the error grows when the score does.
  Use other corruption kinds than the ones you evaluate under, or the fit has seen the test's kind.

The fit is written to `<run_dir>/uncertainty_calibration.json` (`uncertainty_calibration_mc_dropout.json`,
or `uncertainty_calibration_ensemble.json` in an ensemble's folder) and read back by `Calibration.load`;
`Calibration.std(outputs)` turns one recording's outputs into `valence_std`, `arousal_std`,
`audio_valence_std`, ... and `with_std_outputs` bakes the native map into a Keras model (and so into
the exported SavedModel's signature) as outputs `valence_std` and `arousal_std` (and per branch).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import ConfigError, DataError, cli_main
from pipelines.core.io_utils import read_json, write_bytes_atomic, write_json_atomic
from pipelines.data import features

METHODS = ("native", "mc_dropout", "ensemble")
CALIBRATION_FILES = {
    "native": "uncertainty_calibration.json",
    "mc_dropout": "uncertainty_calibration_mc_dropout.json",
    "ensemble": "uncertainty_calibration_ensemble.json",
}
FORMAT_VERSION = 1
NUM_KNOTS = 64
LEVEL = 0.9
SCALE_BY = ("frames", "recordings")
DEFAULT_PASSES = 20
SPREAD_SUFFIX = "_spread"
STD_SUFFIX = "_std"
BRANCH_PREFIXES = {"av": "", "audio": "audio_", "visual": "visual_"}
# The figures (snake_case) of one branch and dimension, in table order.
METRIC_KEYS = (
    "nll",
    "picp_50",
    "width_50",
    "picp_90",
    "width_90",
    "picp_95",
    "width_95",
    "miscalibration_area",
    "ence",
    "ause",
    "ause_random",
    "reject_ccc_50",
)


def _z(level):
    from statistics import NormalDist

    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def interval_bounds(outputs, level=LEVEL) -> dict:
    """The central `level` interval mu -+ z std of every fused dimension whose calibrated std is in
    `outputs` (`<dim>_std`, from `Calibration.std` or an exported model): `<dim>_lower` and
    `<dim>_upper` arrays; {} when there is no std. z is the Gaussian quantile of the level (1.645
    for 0.9, the level the calibration's scale is fitted for; other levels follow the Gaussian shape)."""
    if not 0.0 < level < 1.0:
        raise ConfigError(f"the interval level must lie strictly between 0 and 1, got {level!r}")
    z = _z(level)
    bounds = {}
    for dim in features.LABEL_KEYS:
        std = outputs.get(f"{dim}{STD_SUFFIX}")
        if std is None or dim not in outputs:
            continue
        mu, std = np.asarray(outputs[dim], np.float64), np.asarray(std, np.float64)
        bounds[f"{dim}_lower"], bounds[f"{dim}_upper"] = mu - z * std, mu + z * std
    return bounds


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
                        f"pipelines.evaluation.uncertainty.predict_{method})"
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


# --------------------------------------------------------------------------- the map


def _fit_map(score, abs_error, num_knots=NUM_KNOTS, level=LEVEL, groups=None, scale_by="frames") -> dict:
    """Isotonic map score -> E|e| as knots, and the interval scale (see the module docstring);
    `groups` (one recording index per frame) is needed with `scale_by="recordings"`."""
    from scipy.optimize import isotonic_regression

    score = np.asarray(score, np.float64)
    abs_error = np.asarray(abs_error, np.float64)
    order = np.argsort(score, kind="stable")
    x, e = score[order], abs_error[order]
    fitted = isotonic_regression(e, increasing=True).x
    # One value per distinct score (frames with equal scores share their mean fitted error).
    unique_x, start = np.unique(x, return_index=True)
    sums = np.add.reduceat(fitted, start)
    counts = np.diff(np.append(start, x.size))
    unique_y = sums / counts
    if unique_x.size > num_knots:
        cumulative = np.cumsum(counts) - 1
        picks = np.unique(np.searchsorted(cumulative, np.linspace(0, x.size - 1, num_knots)))
        unique_x, unique_y = unique_x[picks], unique_y[picks]
    floor = max(1e-6, 1e-3 * float(np.mean(abs_error)))
    knots_y = np.maximum(unique_y, floor)
    g = np.interp(score, unique_x, knots_y)
    ratio = abs_error / g
    if scale_by == "recordings":
        groups = np.asarray(groups)
        quantile = max(float(np.quantile(ratio[groups == group], level)) for group in np.unique(groups))
    else:
        quantile = float(np.quantile(ratio, level))
    return {
        "x": unique_x.tolist(),
        "y": knots_y.tolist(),
        "scale": quantile / _z(level),
        "scale_gaussian": float(math.sqrt(math.pi / 2.0)),
        "num_frames": int(score.size),
    }


@dataclasses.dataclass
class Calibration:
    """A fitted score -> std map per branch and dimension (see the module docstring)."""

    method: str
    convention: str
    fitted_on: str
    maps: dict
    score: str = ""
    passes: int | None = None
    members: list | None = None
    level: float = LEVEL
    scale_by: str = "frames"
    fit_corruptions: list | None = None

    def scores(self, outputs) -> dict:
        return uncertainty_scores(outputs, self.method, self.convention)

    def std(self, outputs) -> dict:
        """Per-frame std (label units) of one recording's outputs.

        Args:
            outputs: dict of per-frame arrays of one recording (the inference model's outputs, plus
                `*_spread` for MC dropout and ensembles).

        Returns:
            {"valence_std": [N], "arousal_std": [N], "audio_valence_std": [N], ...} for every branch
            the calibration holds a map for.
        """
        out = {}
        for key, score in self.scores(outputs).items():
            if key not in self.maps:
                continue
            branch, dim = key.split("_", 1)
            entry = self.maps[key]
            value = entry["scale"] * np.interp(score, entry["x"], entry["y"])
            out[f"{BRANCH_PREFIXES[branch]}{dim}{STD_SUFFIX}"] = value.astype(np.float32)
        return out

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def save(self, directory) -> Path:
        path = Path(directory) / CALIBRATION_FILES[self.method]
        write_json_atomic(path, self.to_json())
        return path

    @classmethod
    def load(cls, directory, method="native") -> "Calibration":
        path = Path(directory) / CALIBRATION_FILES[method]
        if not path.is_file():
            raise DataError(
                f"no uncertainty calibration; fit one with python -m pipelines.uncertainty "
                f"--run-dir {directory}" + ("" if method == "native" else f" --uncertainty {method}"),
                path,
            )
        try:
            data = read_json(path)
        except ValueError as error:
            raise DataError(f"not valid JSON ({error})", path) from None
        if data.get("format_version") != FORMAT_VERSION or data.get("method") != method:
            raise DataError(
                f"unexpected calibration file (format_version {data.get('format_version')!r}, "
                f"method {data.get('method')!r}); fit it again",
                path,
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})


def abs_errors(predictions, key) -> tuple:
    """(|y - mu|, labels, predictions) of `<branch>_<dim>` over a partition's frames."""
    branch, dim = key.split("_", 1)
    ys, ps = [], []
    for recording in predictions:
        if recording.get(dim) is None:
            continue
        ys.append(np.asarray(recording[dim], np.float64).reshape(-1))
        ps.append(np.asarray(recording["outputs"][f"{BRANCH_PREFIXES[branch]}{dim}"], np.float64).reshape(-1))
    if not ys:
        return None, None, None
    y, p = np.concatenate(ys), np.concatenate(ps)
    return np.abs(y - p), y, p


def with_corrupted_copies(recordings, corruptions, seed=1) -> list:
    """`recordings` followed by one corrupted copy of all of them per (modality, fraction, mode) of
    `corruptions` (`pipelines.data.corrupt`, consecutive blocks; copy k uses seed `seed + k`, so its
    blocks differ from the evaluator's default seed 0)."""
    from pipelines.data import corrupt

    recordings = list(recordings)
    out = list(recordings)
    hop = float(recordings[0].get("hop") or 0.1) if recordings else 0.1
    for k, (modality, fraction, mode) in enumerate(corruptions or ()):
        out += corrupt.corrupt_recordings(recordings, modality, fraction, mode=mode, seed=seed + k, hop=hop)
    return out


def fit_calibration(
    predictions,
    *,
    method="native",
    convention="informativeness",
    fitted_on="devel",
    passes=None,
    members=None,
    level=LEVEL,
    scale_by="frames",
    fit_corruptions=None,
) -> Calibration:
    """Fits the score -> std maps on a (validation) partition's predictions.

    Args:
        predictions: list from `evaluation.predict_recordings` (or `predict_mc_dropout`,
            `predict_ensemble` for those methods), with labels.
        method: "native", "mc_dropout" or "ensemble".
        convention: the run's weight convention (how ||sigma|| is read).
        fitted_on: partition name, recorded in the file.
        level: nominal coverage the scale is fitted for. Defaults to 0.9.
        scale_by: "frames" (the level holds over the pooled validation frames) or "recordings" (over
            each validation recording's frames). Defaults to "frames".
        fit_corruptions: the corruption specs (`visual:0.5:dropout`, ...) whose corrupted copies of
            the validation recordings are part of `predictions` (`with_corrupted_copies`); recorded
            in the file only.

    Returns:
        Calibration.
    """
    if method not in METHODS:
        raise ConfigError(f"--uncertainty must be one of {', '.join(METHODS)}, got {method!r}")
    if scale_by not in SCALE_BY:
        raise ConfigError(f"--scale-by must be one of {', '.join(SCALE_BY)}, got {scale_by!r}")
    if not predictions:
        raise DataError(f"no recordings to fit the uncertainty calibration on in {fitted_on!r}")
    per_key, groups = {}, {}
    for index, recording in enumerate(predictions):
        for key, score in uncertainty_scores(recording["outputs"], method, convention).items():
            per_key.setdefault(key, []).append(score)
            if recording.get(key.split("_", 1)[1]) is not None:  # labelled: its frames enter the fit
                groups.setdefault(key, []).append(np.full(len(score), index))
    maps = {}
    for key, parts in per_key.items():
        errors, _, _ = abs_errors(predictions, key)
        if errors is None:
            continue
        labelled = [
            part for part, recording in zip(parts, predictions) if recording.get(key.split("_", 1)[1]) is not None
        ]
        maps[key] = _fit_map(
            np.concatenate(labelled), errors, level=level, groups=np.concatenate(groups[key]), scale_by=scale_by
        )
    has_sigma = f"{features.AUDIO}_sigma_norm" in predictions[0]["outputs"]
    return Calibration(
        method=method,
        convention=convention,
        fitted_on=fitted_on,
        maps=maps,
        score=score_description(method, convention, has_sigma),
        passes=passes,
        members=members,
        level=level,
        scale_by=scale_by,
        fit_corruptions=list(fit_corruptions) if fit_corruptions else None,
    )


def attach_std(predictions, calibration) -> list:
    """The predictions with the calibrated `*_std` outputs added to every recording's outputs."""
    return [{**r, "outputs": {**r["outputs"], **calibration.std(r["outputs"])}} for r in predictions]


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


# --------------------------------------------------------------------------- scoring


def uncertainty_metrics(predictions, calibration, *, num_steps=20) -> dict:
    """{"<branch>_<dim>": {figures of METRIC_KEYS..., "curves": {...}}} of calibrated predictions.

    Interval figures use the calibrated std; the ranking figures (sparsification, AUSE, reject-option
    CCC) rank frames by the model's score u, of which the std is a non-decreasing function (ranking by
    u keeps the order that the map's flat stretches would tie). `ause_random` is the AUSE of a random
    ranking (seed 0), the reference a useless uncertainty reaches.
    """
    from cold_keras import metrics as cmetrics

    if not predictions:
        return {}
    stds, scores = {}, {}
    for recording in predictions:
        outputs = recording["outputs"]
        for key, value in calibration.std(outputs).items():
            stds.setdefault(key, []).append(value)
        for key, value in calibration.scores(outputs).items():
            scores.setdefault(key, []).append(value)
    report = {}
    for key, entry in calibration.maps.items():
        branch, dim = key.split("_", 1)
        std_key = f"{BRANCH_PREFIXES[branch]}{dim}{STD_SUFFIX}"
        if std_key not in stds:
            continue
        errors, y, mu = abs_errors(predictions, key)
        if errors is None:
            continue
        std = np.concatenate(stds[std_key]).astype(np.float64)
        score = np.concatenate(scores[key])
        row = {"nll": cmetrics.gaussian_nll(y, mu, std)}
        for level in cmetrics.INTERVAL_LEVELS:
            picp, width = cmetrics.interval_coverage(y, mu, std, level)
            row[f"picp_{round(level * 100)}"], row[f"width_{round(level * 100)}"] = picp, width
        expected, observed = cmetrics.calibration_curve(y, mu, std)
        row["miscalibration_area"] = cmetrics.miscalibration_area(y, mu, std)
        row["ence"] = cmetrics.expected_normalized_calibration_error(y, mu, std)
        fractions, model_curve, oracle = cmetrics.sparsification_curve(y, mu, score, num_steps)
        row["ause"] = float(np.mean(model_curve - oracle))
        random_score = np.random.default_rng(0).permutation(score.size)
        row["ause_random"] = cmetrics.ause(y, mu, random_score, num_steps)
        rejected, kept_ccc = cmetrics.reject_option_ccc(y, mu, score)
        row["reject_ccc_50"] = float(kept_ccc[np.argmin(np.abs(rejected - 0.5))])
        row["ccc"] = float(cmetrics.ccc(y, mu))
        row["curves"] = {
            "calibration": {"expected": expected.tolist(), "observed": observed.tolist()},
            "sparsification": {
                "fraction_removed": fractions.tolist(),
                "model": model_curve.tolist(),
                "oracle": oracle.tolist(),
            },
            "reject_ccc": {"fraction_rejected": [0.0] + rejected.tolist(), "ccc": [row["ccc"]] + kept_ccc.tolist()},
        }
        report[key] = row
    return report


def format_metrics(section) -> str:
    """Text table of `uncertainty_metrics` (one row per branch and dimension)."""
    titles = {
        "nll": "NLL",
        "picp_50": "PICP50",
        "picp_90": "PICP90",
        "width_90": "width90",
        "picp_95": "PICP95",
        "miscalibration_area": "miscal",
        "ence": "ENCE",
        "ause": "AUSE",
        "ause_random": "AUSE rnd",
        "reject_ccc_50": "CCC@50%",
    }
    width = max([16] + [len(key) for key in section])
    header = f"{'output':<{width}} {'CCC':>8} " + " ".join(f"{t:>9}" for t in titles.values())
    lines = [header, "-" * len(header)]
    for key, row in section.items():
        cells = " ".join("        -" if row.get(k) is None else f"{row[k]:>9.4f}" for k in titles)
        lines.append(f"{key:<{width}} {row['ccc']:>8.4f} {cells}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=80)
    _pyplot().close(fig)
    return buffer.getvalue()


def _draw(ax, kind, rows_by_label, dim):
    """One panel: the `kind` curve of dimension `dim` for every label (a branch, or a run)."""
    for index, (label, rows) in enumerate(rows_by_label.items()):
        row = rows.get(dim)
        if row is None:
            continue
        color = f"C{index % 10}"
        curves = row["curves"][kind]
        if kind == "calibration":
            ax.plot(
                curves["expected"],
                curves["observed"],
                color=color,
                label=f"{label} (area {row['miscalibration_area']:.3f})",
            )
        elif kind == "sparsification":
            ax.plot(curves["fraction_removed"], curves["model"], color=color, label=f"{label} (AUSE {row['ause']:.3f})")
            ax.plot(curves["fraction_removed"], curves["oracle"], color=color, ls="--", lw=0.8)
        else:
            ax.plot(
                curves["fraction_rejected"],
                curves["ccc"],
                color=color,
                marker="o",
                ms=3,
                label=f"{label} ({row['reject_ccc_50']:.3f} at 50%)",
            )
    if kind == "calibration":
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set_xlabel("expected coverage")
        ax.set_ylabel("observed coverage")
    elif kind == "sparsification":
        ax.set_xlabel("fraction removed (most uncertain first)")
        ax.set_ylabel("RMSE of kept frames (dashed: oracle)")
    else:
        ax.set_xlabel("fraction rejected (most uncertain first)")
        ax.set_ylabel("CCC of the kept frames")
    ax.set_title(f"{dim}: {kind.replace('_', ' ')}", fontsize=9)
    ax.legend(fontsize=7)


def plot_curves(curves_by_label, kind, title) -> bytes:
    """One panel per dimension; one line per label (a branch, or a run in `pipelines.compare`).

    Args:
        curves_by_label: {label: {dim: row of `uncertainty_metrics` (with "curves")}}.
        kind: "calibration", "sparsification" or "reject_ccc".
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(features.LABEL_KEYS), figsize=(9, 3.8))
    for ax, dim in zip(axes, features.LABEL_KEYS):
        _draw(ax, kind, curves_by_label, dim)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def plot_comparison(curves_by_label, title) -> bytes:
    """The three curves (rows) of both dimensions (columns) for several runs on one figure."""
    plt = _pyplot()
    kinds = ("calibration", "sparsification", "reject_ccc")
    fig, axes = plt.subplots(len(kinds), len(features.LABEL_KEYS), figsize=(10, 11))
    for row_axes, kind in zip(axes, kinds):
        for ax, dim in zip(row_axes, features.LABEL_KEYS):
            _draw(ax, kind, curves_by_label, dim)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def compare_runs(run_dirs, folder, output_png, branch="av", verbose=True) -> dict:
    """Puts the uncertainty curves of several evaluated runs (or ensembles) on one figure.

    Reads `<run>/evaluation/<folder>/report.json` (written by `pipelines.evaluate` or
    `pipelines.ensemble`), draws `plot_comparison` of `branch` to `output_png` and returns
    {label: {dim: row}}.
    """
    rows_by_label = {}
    names = [Path(d).name for d in run_dirs]
    for run_dir, name in zip(run_dirs, names):
        path = Path(run_dir) / "evaluation" / folder / "report.json"
        if not path.is_file():
            raise DataError(
                f"no evaluation {folder!r}; run python -m pipelines.evaluate --run-dir {run_dir} "
                f"(or pipelines.ensemble) for it first",
                path,
            )
        try:
            report = read_json(path)
        except ValueError as error:
            raise DataError(f"not valid JSON ({error})", path) from None
        section = (report.get("predictive_uncertainty") or {}).get("metrics")
        if not section:
            raise DataError(
                "the evaluation holds no predictive-uncertainty figures (a regression run evaluated "
                "by this version of pipelines.evaluate has them)",
                path,
            )
        label = name if names.count(name) == 1 else f"{Path(run_dir).parent.name}/{name}"
        label = f"{label} [{report['predictive_uncertainty']['method']}]"
        rows_by_label[label] = {
            dim: section[f"{branch}_{dim}"] for dim in features.LABEL_KEYS if f"{branch}_{dim}" in section
        }
    write_bytes_atomic(Path(output_png), plot_comparison(rows_by_label, f"{folder}, branch {branch}"))
    if verbose:
        print(
            format_metrics(
                {f"{label[:40]} {dim}": row for label, rows in rows_by_label.items() for dim, row in rows.items()}
            )
        )
        print(f"\nwritten: {output_png}")
    return rows_by_label


FIGURES = {
    "calibration": "uncertainty_calibration_curve.png",
    "sparsification": "uncertainty_sparsification.png",
    "reject_ccc": "uncertainty_reject_ccc.png",
}


def figures(section, title) -> dict:
    """{file name: PNG bytes}: the three curves, one line per branch, one panel per dimension."""
    by_branch = {}
    for key, row in section.items():
        branch, dim = key.split("_", 1)
        by_branch.setdefault(branch, {})[dim] = row
    return {name: plot_curves(by_branch, kind, f"{title}: {kind.replace('_', ' ')}") for kind, name in FIGURES.items()}


# --------------------------------------------------------------------------- one run


def calibration_for(
    run_dir,
    inference_model,
    config,
    artifact_dir,
    method="native",
    *,
    passes=DEFAULT_PASSES,
    seed=0,
    refit=False,
    verbose=True,
    scale_by="frames",
    fit_corruptions=None,
) -> Calibration:
    """The run's calibration for `method`: read from the run directory, or fitted on the run's
    validation partition (clean, plus a corrupted copy of it per spec of `fit_corruptions`;
    `scale_by` as in `fit_calibration`) and written there first."""
    path = Path(run_dir) / CALIBRATION_FILES[method]
    if path.is_file() and not refit:
        calibration = Calibration.load(run_dir, method)
        if method != "mc_dropout" or calibration.passes == passes:
            return calibration
    from pipelines.components import input_pipeline
    from pipelines.data import corrupt

    validation = config["training"]["validation_partition"]
    recordings = list(input_pipeline.iter_recordings(artifact_dir, validation))
    specs = list(fit_corruptions or ())
    recordings = with_corrupted_copies(recordings, [corrupt.parse_corruption(spec) for spec in specs])
    predictions = predictor(method, passes=passes, seed=seed)(inference_model, recordings)
    convention = config["model"]["weight_convention"]
    calibration = fit_calibration(
        predictions,
        method=method,
        convention=convention,
        fitted_on=validation,
        passes=passes if method == "mc_dropout" else None,
        scale_by=scale_by,
        fit_corruptions=specs,
    )
    calibration.save(run_dir)
    if verbose:
        extra = f" + corrupted copies ({', '.join(specs)})" if specs else ""
        print(f"uncertainty calibration ({method}) fitted on {validation}{extra}: {path}")
    return calibration


def with_std_outputs(model, calibration):
    """A Keras model with the inputs of `model` and its outputs plus the calibrated `*_std` outputs
    (native calibration: a piecewise-linear interpolation of the score in TensorFlow ops), so that the
    exported SavedModel's signature carries `valence_std` and `arousal_std` (and per branch)."""
    import keras

    if calibration.method != "native":
        raise ConfigError(
            "only the native uncertainty can be part of a model (MC dropout and ensembles "
            "need several passes or models)"
        )
    inputs = {}
    for layer in model.layers:
        if layer.name in features.INPUT_KEYS and isinstance(layer, keras.layers.InputLayer):
            shape = tuple(layer.output.shape[1:])
            inputs[layer.name] = keras.Input(shape=shape, name=layer.name, dtype=layer.output.dtype)
    outputs = dict(model(inputs))
    std_layer = CalibratedStd(calibration.to_json(), name="calibrated_std")
    outputs.update(std_layer(outputs))
    return keras.Model(inputs=inputs, outputs=outputs, name=f"{model.name}_with_std")


def servable_model(model, run_dir, config, artifact_dir):
    """`model` with the run's calibrated `*_std` outputs when the run directory holds a native
    calibration (`python -m pipelines.uncertainty --run-dir RUN`, or any regression evaluation, writes
    it), else `model` unchanged."""
    if config.get("task") != "regression" or not (Path(run_dir) / CALIBRATION_FILES["native"]).is_file():
        return model
    return with_std_outputs(model, Calibration.load(run_dir, "native"))


def _interp_tf(x, knots_x, knots_y):
    """np.interp in TensorFlow ops: piecewise-linear through the knots, constant outside."""
    import tensorflow as tf

    kx = tf.constant(knots_x, x.dtype)
    ky = tf.constant(knots_y, x.dtype)
    if len(knots_x) == 1:
        return tf.ones_like(x) * ky[0]
    flat = tf.reshape(x, [-1])
    index = tf.clip_by_value(tf.searchsorted(kx, flat, side="right"), 1, len(knots_x) - 1)
    x0, x1 = tf.gather(kx, index - 1), tf.gather(kx, index)
    y0, y1 = tf.gather(ky, index - 1), tf.gather(ky, index)
    t = tf.clip_by_value((flat - x0) / (x1 - x0), 0.0, 1.0)
    return tf.reshape(y0 + t * (y1 - y0), tf.shape(x))


def _calibrated_std_layer():
    import keras
    import tensorflow as tf

    class _CalibratedStd(keras.layers.Layer):
        """Outputs `<prefix><dim>_std` from the model's sigma norms and fusion weights."""

        def __init__(self, calibration, **kwargs):
            super().__init__(**kwargs)
            self.calibration = calibration

        def call(self, outputs):
            maps = self.calibration["maps"]
            inverse = self.calibration["convention"] == "informativeness"
            scores = {}
            norms = {m: outputs.get(f"{m}_sigma_norm") for m in features.MODALITIES}
            if all(v is not None for v in norms.values()):
                for m, norm in norms.items():
                    # float64 as the NumPy map: near a steep knot float32 rounding of the score shows.
                    norm = tf.maximum(tf.cast(norm, tf.float64), 1e-12)
                    scores[m] = 1.0 / norm if inverse else norm
                weights = [outputs.get(f"{m}_weight") for m in features.MODALITIES]
                if all(w is not None for w in weights):
                    scores["av"] = sum(tf.cast(w, tf.float64) * scores[m] for w, m in zip(weights, features.MODALITIES))
                else:
                    scores["av"] = (scores[features.AUDIO] + scores[features.VISUAL]) / 2.0
            result = {}
            for key, entry in maps.items():
                branch, dim = key.split("_", 1)
                name = f"{BRANCH_PREFIXES[branch]}{dim}"
                if name not in outputs:
                    continue
                reference = tf.cast(outputs[name], tf.float64)
                score = scores.get(branch, tf.ones_like(reference))
                value = entry["scale"] * _interp_tf(score, entry["x"], entry["y"])
                result[name + STD_SUFFIX] = tf.cast(value, tf.float32)
            return result

    return _CalibratedStd


def CalibratedStd(calibration, **kwargs):  # noqa: N802 - a layer factory (keeps Keras out of import time)
    """The Keras layer computing the calibrated std outputs of a native calibration (as JSON)."""
    return _calibrated_std_layer()(calibration, **kwargs)


def write_frame_csvs(predictions, out_dir) -> list:
    """Per-frame fused predictions and their calibrated std: `<out_dir>/<name>.csv` with
    `name;timestamp;arousal;valence;arousal_std;valence_std` (AVEC's layout plus the two std columns)."""
    from pipelines.core.io_utils import write_text_atomic

    written = []
    for recording in predictions:
        outputs = recording["outputs"]
        columns = [
            features.AROUSAL,
            features.VALENCE,
            f"{features.AROUSAL}{STD_SUFFIX}",
            f"{features.VALENCE}{STD_SUFFIX}",
        ]
        values = [np.asarray(outputs[c], np.float64).reshape(-1) for c in columns]
        timestamps = recording.get("timestamps")
        if timestamps is None or len(timestamps) != len(values[0]):
            timestamps = np.arange(len(values[0])) * float(recording.get("hop", 0.1))
        lines = ["name;timestamp;" + ";".join(columns)]
        for t, row in zip(timestamps, zip(*values)):
            lines.append(f"'{recording['name']}';{float(t):.2f};" + ";".join(f"{v:.6f}" for v in row))
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in recording["name"]) + ".csv"
        write_text_atomic(Path(out_dir) / name, "\n".join(lines) + "\n")
        written.append(name)
    return written


def evaluate_section(
    report,
    run_dir,
    inference_model,
    config,
    artifact_dir,
    predictions,
    out_dir,
    method="native",
    *,
    passes=DEFAULT_PASSES,
    seed=0,
    verbose=True,
) -> list:
    """The evaluator's predictive-uncertainty part: calibration (read or fitted on the validation
    partition), figures of `uncertainty_metrics`, per-frame CSVs with the std; fills
    `report["predictive_uncertainty"]` and returns the files written (relative to `out_dir`)."""
    calibration = calibration_for(
        run_dir, inference_model, config, artifact_dir, method, passes=passes, seed=seed, verbose=verbose
    )
    calibrated = attach_std(predictions, calibration)
    section = uncertainty_metrics(calibrated, calibration)
    report["predictive_uncertainty"] = {
        "method": method,
        "score": calibration.score,
        "fitted_on": calibration.fitted_on,
        "passes": calibration.passes,
        "calibration_file": CALIBRATION_FILES[method],
        "metrics": section,
    }
    files = []
    title = f"{report['model']} {report['partition']}" + ("" if report.get("corruption") is None else " (corrupted)")
    for name, data in figures(section, f"{title}, {method}").items():
        write_bytes_atomic(Path(out_dir) / name, data)
        files.append(name)
    write_frame_csvs(calibrated, Path(out_dir) / "frames")
    return files + ["frames/"]


def format_section(section) -> str:
    passes = f", {section['passes']} passes" if section.get("passes") else ""
    return "\n".join(
        [
            f"predictive uncertainty ({section['method']}{passes}; score: {section['score']}), "
            f"std calibrated on {section['fitted_on']}; ranking figures rank frames by the score",
            format_metrics(section["metrics"]),
        ]
    )


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.uncertainty",
        description="Fit the per-frame uncertainty calibration of a run on its validation partition and write "
        "it to the run directory (uncertainty_calibration*.json). Example: python -m "
        "pipelines.uncertainty --run-dir runs/synthetic_cold_fusion_regression",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, help="run directory written by pipelines.train")
    parser.add_argument(
        "--uncertainty",
        default="native",
        choices=("native", "mc_dropout"),
        help="native: the model's own score (COLD's sigma; constant for other models); "
        "mc_dropout: std over --mc-passes stochastic passes with dropout on",
    )
    parser.add_argument("--mc-passes", type=int, default=DEFAULT_PASSES, help="passes of --uncertainty mc_dropout")
    parser.add_argument("--seed", type=int, default=0, help="Keras random seed set before the stochastic passes")
    parser.add_argument(
        "--scale-by",
        default="frames",
        choices=SCALE_BY,
        help="the 90%% intervals cover 90%% of the pooled validation frames (frames) or of every "
        "validation recording's frames (recordings: wider, for test recordings harder than the "
        "validation ones)",
    )
    parser.add_argument(
        "--fit-corrupt",
        metavar="SPEC[,SPEC]",
        default="",
        help="also fit on a corrupted copy of the validation partition per SPEC "
        "(MODALITY:FRACTION[:MODE], e.g. visual:0.5:dropout,visual:0.5:frozen; modes as in "
        "pipelines.evaluate --corrupt-mode), so that the intervals learn how the error grows with "
        "the score on damaged frames too",
    )
    cli.finish_parser(parser)
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    # Checks only: the calibration is written into the run directory, which must exist (`open_run` says so).
    cli.check_output_dir(args.run_dir, "--run-dir", create=False)
    if args.mc_passes < 2:
        raise ConfigError(f"--mc-passes must be >= 2, got {args.mc_passes}")
    from pipelines.data import corrupt
    from pipelines.runs import folders as runs

    fit_corruptions = [spec for spec in args.fit_corrupt.split(",") if spec.strip()]
    for spec in fit_corruptions:
        corrupt.parse_corruption(spec)

    config, artifact_dir, manifest = runs.open_run(args.run_dir)
    if any(p.get("sequence_level", False) for p in manifest["partitions"].values()):
        raise ConfigError(
            "uncertainty calibration applies to frame-level corpora (this run's labels are per utterance)",
            Path(args.run_dir) / "config.json",
        )
    if config["task"] != "regression":
        raise ConfigError(
            "uncertainty calibration applies to regression runs (classification: temperature "
            "scaling in pipelines.evaluate)",
            Path(args.run_dir) / "config.json",
        )
    infer, _ = runs.load_inference_model(args.run_dir)
    calibration = calibration_for(
        args.run_dir,
        infer,
        config,
        artifact_dir,
        args.uncertainty,
        passes=args.mc_passes,
        seed=args.seed,
        refit=True,
        scale_by=args.scale_by,
        fit_corruptions=fit_corruptions,
    )
    print(f"score: {calibration.score}")
    for key, entry in calibration.maps.items():
        print(
            f"  {key:<16} {len(entry['x']):>3} knots, E|e| {entry['y'][0]:.4f} .. {entry['y'][-1]:.4f}, "
            f"scale {entry['scale']:.3f} (Gaussian link {entry['scale_gaussian']:.3f})"
        )
