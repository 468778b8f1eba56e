"""Reliability-aware conformal intervals: per-frame bounds whose width follows what is known about a frame's inputs.

The isotonic calibration of `pipelines.uncertainty` maps one score (the fused sigma) to a width. When one
modality breaks, the fusion weights move to the intact one, the fused score follows that modality's
sigma, and the interval hardly widens. This module conditions the width on the model's reliability
signals instead, all label-free and read from one recording's outputs (`signals`):

* `log_sigma_audio`, `log_sigma_visual`: log ||sigma_m|| of COLD fusion;
* `visual_weight`: the fusion weight of the visual modality;
* `disagreement`, `disagreement_other`: |Y_A - Y_V| of the unimodal branches, for the dimension and for
  the other dimension (large exactly where one branch is wrong, a swapped modality included);
* `gap_audio`, `gap_visual`: |Y_AV - Y_A| and |Y_AV - Y_V|, which branch the fused output follows;
* `disagreement_smooth`: the branch disagreement of both dimensions averaged over `smooth_frames`
  frames (damage comes in stretches; one frame's disagreement is noisy);
* `audio_absent`, `visual_absent`: 1 - the presence flags (`audio_present`, `visual_present` in the
  outputs dict; all present when missing);
* `audio_atypicality`, `visual_atypicality`: log(1 + score) of the models that output them.

Columns whose inputs are missing or that are constant on the calibration data are left out; the fit
records the names it uses. Intervals for key k (`<branch>_<dim>`, branch av = fused, audio, visual):

    difficulty  s(x) = exp(b0 + b . (x - mean) / scale)        (x: the signal row of a frame)
    bin         j = number of `edges` below s (Mondrian categories over the difficulty)
    half-width  h = q[level][j] * s

b is the maximum-likelihood log-linear scale of a Laplace model of the error (convex, Newton
steps, a small ridge), fitted on the calibration frames; `q[level][j]` is the split-conformal
quantile of |y - mu| / s over the calibration frames of bin j (`crepes.ConformalRegressor`,
normalised and Mondrian): the ceil((n_j + 1) level)-th smallest of its n_j scores. The calibration
frames are the validation partition plus corrupted copies of it
(`pipelines.uncertainty.with_corrupted_copies`), so the damaged bins have frames to calibrate on.
`normalized=False` drops the factor s from the half-width (a plain Mondrian regressor over the
difficulty bins), `num_bins=1` keeps a single bin (plain normalised), both together give the standard
split-conformal regressor.

Everything fitted is a handful of numbers per key (`to_json`), evaluated with a matrix product, an
exponential and a bin look-up, so the same bounds can be computed inside a TensorFlow graph.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pipelines.errors import ConfigError, DataError

FORMAT_VERSION = 1
DIMENSIONS = ("valence", "arousal")
MODALITIES = ("audio", "visual")
BRANCH_PREFIXES = {"av": "", "audio": "audio_", "visual": "visual_"}
LEVEL = 0.9
LEVELS = (0.5, 0.8, 0.9, 0.95)
NUM_BINS = 3
SMOOTH_FRAMES = 21
RIDGE = 1e-3
LEVEL_NUDGE = 1e-10
SIGNAL_NAMES = (
    "log_sigma_audio",
    "log_sigma_visual",
    "visual_weight",
    "disagreement",
    "disagreement_other",
    "gap_audio",
    "gap_visual",
    "disagreement_smooth",
    "audio_absent",
    "visual_absent",
    "audio_atypicality",
    "visual_atypicality",
)


def _z(level):
    from statistics import NormalDist

    return NormalDist().inv_cdf((1.0 + level) / 2.0)


def _array(outputs, key, n=None) -> np.ndarray:
    if key not in outputs:
        raise DataError(f"the outputs lack {key!r}, which the conformal calibration needs")
    value = np.asarray(outputs[key], np.float64).reshape(-1)
    if n is not None and value.size != n:
        raise DataError(f"output {key!r} has {value.size} frames, expected {n}")
    if not np.all(np.isfinite(value)):
        raise DataError(f"output {key!r} holds NaN or infinite values")
    return value


def moving_mean(values, frames) -> np.ndarray:
    """Centred moving mean over `frames` frames, averaging only the frames inside the recording at its
    ends (the same as a 'same'-padded average pool of the values divided by one of ones)."""
    values = np.asarray(values, np.float64)
    if frames <= 1 or values.size == 0:
        return values.copy()
    half = frames // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    lo, hi = np.maximum(index - half, 0), np.minimum(index + frames - half, values.size)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def available_signals(outputs) -> list:
    """The names of `SIGNAL_NAMES` that one recording's outputs can give."""
    have = set(outputs)
    branches = all(f"{p}{d}" in have for p in ("", "audio_", "visual_") for d in DIMENSIONS)
    needs = {
        "log_sigma_audio": "audio_sigma_norm",
        "log_sigma_visual": "visual_sigma_norm",
        "visual_weight": "visual_weight",
        "audio_atypicality": "audio_atypicality",
        "visual_atypicality": "visual_atypicality",
    }
    return [
        name
        for name in SIGNAL_NAMES
        if name.endswith("_absent") or (needs[name] in have if name in needs else branches)
    ]


def signals(outputs, dim, names=None, smooth_frames=SMOOTH_FRAMES) -> np.ndarray:
    """The signal matrix [N, len(names)] of one recording's outputs for dimension `dim` (label-free).

    Args:
        outputs: dict of per-frame arrays of one recording (the inference model's outputs, plus
            `audio_present` / `visual_present` when the recording has them).
        dim: "valence" or "arousal".
        names: the columns, of `SIGNAL_NAMES`. Defaults to every column the outputs can give.
        smooth_frames: window of `disagreement_smooth`.
    """
    if dim not in DIMENSIONS:
        raise ConfigError(f"dimension must be one of {', '.join(DIMENSIONS)}, got {dim!r}")
    names = available_signals(outputs) if names is None else list(names)
    n = _array(outputs, dim).size
    other = DIMENSIONS[1 - DIMENSIONS.index(dim)]
    cache = {}

    def branch(prefix, d):
        key = f"{prefix}{d}"
        if key not in cache:
            cache[key] = _array(outputs, key, n)
        return cache[key]

    columns = []
    for name in names:
        if name.startswith("log_sigma_"):
            value = np.log(np.maximum(_array(outputs, f"{name[10:]}_sigma_norm", n), 1e-12))
        elif name == "visual_weight":
            value = _array(outputs, "visual_weight", n)
        elif name == "disagreement":
            value = np.abs(branch("audio_", dim) - branch("visual_", dim))
        elif name == "disagreement_other":
            value = np.abs(branch("audio_", other) - branch("visual_", other))
        elif name in ("gap_audio", "gap_visual"):
            value = np.abs(branch("", dim) - branch(f"{name[4:]}_", dim))
        elif name == "disagreement_smooth":
            both = sum(np.abs(branch("audio_", d) - branch("visual_", d)) for d in DIMENSIONS) / 2.0
            value = moving_mean(both, smooth_frames)
        elif name.endswith("_absent"):
            key = f"{name[: -len('_absent')]}_present"
            value = 1.0 - (_array(outputs, key, n) if key in outputs else np.ones(n))
        elif name.endswith("_atypicality"):
            value = np.log1p(np.maximum(_array(outputs, name, n), 0.0))
        else:
            raise ConfigError(f"unknown conformal signal {name!r}; known: {', '.join(SIGNAL_NAMES)}")
        columns.append(value)
    return np.stack(columns, axis=1) if columns else np.zeros((n, 0))


def fit_log_scale(x, abs_error, ridge=RIDGE, steps=50) -> np.ndarray:
    """Coefficients [1 + F] (intercept first) of s = exp(b0 + x b) maximising the Laplace likelihood
    of `abs_error`: minimises mean(log s + |e| / s) + ridge |b|^2 (convex) by damped Newton steps."""
    x = np.column_stack([np.ones(len(x)), np.asarray(x, np.float64)])
    e = np.maximum(np.asarray(abs_error, np.float64), 1e-12)
    beta = np.zeros(x.shape[1])
    beta[0] = math.log(float(np.mean(e)))
    penalty = np.full(x.shape[1], ridge)
    penalty[0] = 0.0

    def loss(b):
        eta = x @ b
        return float(np.mean(eta + e * np.exp(-eta)) + np.sum(penalty * b * b))

    current = loss(beta)
    for _ in range(steps):
        r = e * np.exp(-(x @ beta))
        gradient = x.T @ (1.0 - r) / len(e) + 2 * penalty * beta
        hessian = (x * r[:, None]).T @ x / len(e) + np.diag(2 * penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        while loss(beta - step) > current and np.max(np.abs(step)) > 1e-12:
            step = step / 2.0
        value = loss(beta - step)
        if value > current or current - value < 1e-10:
            return beta if value > current else beta - step
        beta, current = beta - step, value
    return beta


def conformal_quantile(scores, level) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score, +inf when n is too small.

    crepes takes the rank as int((1 - level) (n + 1)) in floating point, which falls one rank too high
    where (n + 1)(1 - level) is a whole number (0.1 * 10 = 0.99...); the level it is given is lowered
    by `LEVEL_NUDGE` so that its rank is the exact one."""
    import warnings

    from crepes import ConformalRegressor

    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        return math.inf
    regressor = ConformalRegressor().fit(scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too few scores for the level: crepes warns and gives inf
        interval = regressor.predict_int(np.zeros(1), confidence=level - LEVEL_NUDGE)
    return float(interval[0, 1])


@dataclasses.dataclass
class ConformalCalibration:
    """Fitted intervals per key (see the module docstring); `to_json` / `from_json` round-trip exactly."""

    levels: list
    level: float
    signals: dict  # dim -> {"names", "mean", "scale"}
    keys: dict  # "<branch>_<dim>" -> {"coef", "edges", "quantiles" [level][bin], "frames" [bin]}
    normalized: bool = True
    smooth_frames: int = SMOOTH_FRAMES
    fitted_on: str = "devel"
    fit_corruptions: list | None = None
    num_frames: int = 0

    def difficulty(self, outputs, key) -> np.ndarray:
        """s(x) of every frame of one recording for `key`."""
        dim = key.split("_", 1)[1]
        entry, spec = self.keys[key], self.signals[dim]
        x = signals(outputs, dim, spec["names"], self.smooth_frames)
        z = (x - np.asarray(spec["mean"])) / np.asarray(spec["scale"])
        coef = np.asarray(entry["coef"])
        return np.exp(coef[0] + z @ coef[1:])

    def bins(self, difficulty, key) -> np.ndarray:
        return np.searchsorted(np.asarray(self.keys[key]["edges"], np.float64), difficulty, side="left")

    def half_widths(self, outputs, level=None) -> dict:
        """{key: half-width [N]} of one recording at `level` (one of `levels`)."""
        level = self.level if level is None else level
        if not any(math.isclose(level, value) for value in self.levels):
            raise ConfigError(
                f"interval level {level!r} was not fitted; the calibration holds {', '.join(map(str, self.levels))}"
            )
        index = next(i for i, value in enumerate(self.levels) if math.isclose(level, value))
        out = {}
        for key in self.keys:
            branch, dim = key.split("_", 1)
            if f"{BRANCH_PREFIXES[branch]}{dim}" not in outputs:
                continue
            s = self.difficulty(outputs, key)
            q = np.asarray(self.keys[key]["quantiles"][index], np.float64)
            out[key] = q[self.bins(s, key)] * (s if self.normalized else 1.0)
        return out

    def bounds(self, outputs, level=None) -> dict:
        """`<prefix><dim>_lower`, `_upper` and `_std` (half-width / z of the level, the Gaussian std
        with the same central interval) of every key, for one recording's outputs."""
        level = self.level if level is None else level
        out = {}
        for key, half in self.half_widths(outputs, level).items():
            branch, dim = key.split("_", 1)
            name = f"{BRANCH_PREFIXES[branch]}{dim}"
            mu = _array(outputs, name)
            out[f"{name}_lower"], out[f"{name}_upper"] = mu - half, mu + half
            out[f"{name}_std"] = half / _z(level)
        return out

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data) -> "ConformalCalibration":
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise DataError(f"unexpected conformal calibration (format_version {version!r}); fit it again")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = [name for name in ("levels", "level", "signals", "keys") if name not in data]
        if missing:
            raise DataError(f"the conformal calibration lacks {missing[0]!r}; fit it again")
        return cls(**{key: value for key, value in data.items() if key in fields})


def _with_presence(recording) -> dict:
    outputs = dict(recording["outputs"])
    for modality in MODALITIES:
        key = f"{modality}_present"
        if key not in outputs and recording.get(key) is not None:
            outputs[key] = recording[key]
    return outputs


def fit(
    predictions,
    *,
    levels=LEVELS,
    level=LEVEL,
    normalized=True,
    num_bins=NUM_BINS,
    names=None,
    ridge=RIDGE,
    fitted_on="devel",
    fit_corruptions=None,
) -> ConformalCalibration:
    """Fits the intervals on labelled predictions (the validation partition plus corrupted copies).

    Args:
        predictions: list of recordings as from `evaluation.predict_recordings`: `outputs`, the
            labels `valence` / `arousal` (recordings without labels are left out) and optionally the
            presence flags.
        levels: the coverage levels to fit a quantile for. `level` (default 0.9) must be among them.
        normalized: scale the intervals by the difficulty model (else a constant per bin).
        num_bins: Mondrian categories over the difficulty (quantile bins of the calibration frames).
        names: the signal columns to use (default: all the outputs give, less the constant ones).
        fitted_on, fit_corruptions: recorded in the fit.
    """
    levels = [float(v) for v in levels]
    if not levels or any(not 0.0 < v < 1.0 for v in levels):
        raise ConfigError(f"every interval level must lie strictly between 0 and 1, got {levels!r}")
    if not any(math.isclose(level, v) for v in levels):
        raise ConfigError(f"level {level!r} must be one of the fitted levels {levels!r}")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ConfigError(f"num_bins must be an integer >= 1, got {num_bins!r}")
    labelled = [r for r in predictions if all(r.get(d) is not None for d in DIMENSIONS)]
    if not labelled:
        raise DataError(f"no labelled recordings to fit the conformal calibration on in {fitted_on!r}")
    outputs = [_with_presence(r) for r in labelled]
    common = [n for n in (available_signals(outputs[0]) if names is None else names)]
    unknown = [n for n in common if n not in SIGNAL_NAMES]
    if unknown:
        raise ConfigError(f"unknown conformal signal {unknown[0]!r}; known: {', '.join(SIGNAL_NAMES)}")
    spec, keys = {}, {}
    for dim in DIMENSIONS:
        x = np.concatenate([signals(o, dim, common) for o in outputs])
        mean, scale = x.mean(axis=0), x.std(axis=0)
        keep = scale > 1e-9
        spec[dim] = {
            "names": [n for n, k in zip(common, keep) if k],
            "mean": mean[keep].tolist(),
            "scale": scale[keep].tolist(),
        }
        z = (x[:, keep] - mean[keep]) / scale[keep]
        y = np.concatenate([_array({"y": r[dim]}, "y") for r in labelled])
        if y.size != len(z):
            raise DataError(f"the labels {dim!r} and the outputs differ in length")
        for branch, prefix in BRANCH_PREFIXES.items():
            if f"{prefix}{dim}" not in outputs[0]:
                continue
            mu = np.concatenate([_array(o, f"{prefix}{dim}") for o in outputs])
            error = np.abs(y - mu)
            coef = fit_log_scale(z, error, ridge)
            s = np.exp(coef[0] + z @ coef[1:])
            edges = _edges(s, num_bins)
            bins = np.searchsorted(np.asarray(edges, np.float64), s, side="left")
            score = error / s if normalized else error
            quantiles = [
                [conformal_quantile(score[bins == j], value) for j in range(len(edges) + 1)] for value in levels
            ]
            if not np.all(np.isfinite(quantiles)):
                raise DataError(
                    f"too few calibration frames for {branch}_{dim} at level {max(levels)} in one of "
                    f"{len(edges) + 1} bins ({min(np.bincount(bins))} frames); fit on more frames or fewer bins"
                )
            keys[f"{branch}_{dim}"] = {
                "coef": coef.tolist(),
                "edges": list(edges),
                "quantiles": quantiles,
                "frames": [int(np.sum(bins == j)) for j in range(len(edges) + 1)],
            }
    return ConformalCalibration(
        levels=levels,
        level=float(level),
        signals=spec,
        keys=keys,
        normalized=bool(normalized),
        fitted_on=fitted_on,
        fit_corruptions=list(fit_corruptions) if fit_corruptions else None,
        num_frames=int(sum(len(_array(o, DIMENSIONS[0])) for o in outputs)),
    )


def _edges(values, num_bins) -> list:
    """Inner edges of `num_bins` quantile bins of `values` (crepes' binning; ties merged)."""
    if num_bins <= 1:
        return []
    from crepes.extras import binning

    _, boundaries = binning(np.asarray(values, np.float64), bins=num_bins)
    return [float(v) for v in np.unique(boundaries[1:-1])]
