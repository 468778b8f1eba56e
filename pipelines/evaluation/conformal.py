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
* `audio_atypicality`, `visual_atypicality`: log(1 + a) of the atypicality a >= 0 of each modality's
  inputs (`cold_keras.layers.reliability.Atypicality`), when the outputs carry it.

Columns whose inputs are missing or constant on the calibration data are left out; the fit records
the names it uses. Intervals of key k (`<branch>_<dim>`, branch av = fused, audio, visual):

    difficulty  s(x) = exp(b0 + b . (x - mean) / scale)       (x: the signal row of a frame)
    bin         j = number of `edges` below s                  (Mondrian categories)
    half-width  h = q[level][j] * (s if normalized else 1)

b maximises the likelihood of a Laplace model of |y - mu| with a log-linear scale (convex; Newton
steps, a small ridge). q[level][j] is the split-conformal quantile of the scores |y - mu| (/ s) of bin
j's calibration frames (`crepes.ConformalRegressor`): the ceil((n + 1) level)-th smallest of n. With
`groups` (one label per calibration recording: its corruption and its name, `unit_groups`), each
group's own quantile is taken and q is the conformal quantile at `group_level` of those (1 = the
largest): the level then holds for most (kind of damage, recording) units rather than for their
pooled mixture, which a kind of damage not seen in the fit and a recording harder than the validation
ones need. The calibration recordings are the validation partition plus corrupted copies of it
(`pipelines.evaluation.uncertainty.with_corrupted_copies` with `DEFAULT_FIT_CORRUPTIONS`).

Everything fitted is a handful of numbers per key (`to_json`), evaluated with a matrix product, an
exponential and a bin look-up, so the same bounds can be computed inside a TensorFlow graph.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features

FORMAT_VERSION = 1
DIMENSIONS = features.DIMENSIONS
MODALITIES = features.MODALITIES
BRANCH_PREFIXES = features.BRANCH_PREFIXES
CALIBRATION_FILE = "conformal_calibration.json"
LEVEL = 0.9
LEVELS = (0.5, 0.8, 0.9, 0.95)
NUM_BINS = 3
GROUP_LEVEL = 2 / 3
DEFAULT_FIT_CORRUPTIONS = tuple(
    f"visual:0.5:{kind}" for kind in ("noise", "swap", "frozen", "drift", "desync", "dropout", "zeros")
)
SMOOTH_FRAMES = 21
RIDGE = 1e-3
LEVEL_NUDGE = 1e-10
MIN_GROUP_FRAMES = 100
SIGNAL_NAMES = tuple(
    "log_sigma_audio log_sigma_visual visual_weight disagreement disagreement_other gap_audio gap_visual "
    "disagreement_smooth audio_absent visual_absent audio_atypicality visual_atypicality".split()
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
    """Centred moving mean over `frames` frames (fewer at the ends: a 'same' average pool / one of ones)."""
    values, half = np.asarray(values, np.float64), frames // 2
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(values.size)
    lo, hi = np.maximum(index - half, 0), np.minimum(index + frames - half, values.size)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def available_signals(outputs) -> list:
    """The names of `SIGNAL_NAMES` that one recording's outputs can give."""
    branches = all(f"{p}{d}" in outputs for p in ("", "audio_", "visual_") for d in DIMENSIONS)
    needs = {"log_sigma_audio": "audio_sigma_norm", "log_sigma_visual": "visual_sigma_norm"}
    needs.update({name: name for name in ("visual_weight", "audio_atypicality", "visual_atypicality")})
    return [n for n in SIGNAL_NAMES if n.endswith("_absent") or (needs[n] in outputs if n in needs else branches)]


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

    def branch(prefix, d):
        return _array(outputs, f"{prefix}{d}", n)

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
    beta = np.r_[math.log(float(np.mean(e))), np.zeros(x.shape[1] - 1)]
    penalty = np.r_[0.0, np.full(x.shape[1] - 1, ridge)]

    def loss(b):
        return float(np.mean(x @ b + e * np.exp(-(x @ b))) + np.sum(penalty * b * b))

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
    """Fitted intervals per key (see the module docstring); `to_json` / `from_json` round-trip exactly.
    `difficulty` is also the frames' ranking score (larger = less reliable)."""

    levels: list
    level: float
    signals: dict  # dim -> {"names", "mean", "scale"}
    keys: dict  # "<branch>_<dim>" -> {"coef", "edges", "quantiles" [level][bin], "frames" [bin]}
    normalized: bool = False
    smooth_frames: int = SMOOTH_FRAMES
    fitted_on: str = "devel"
    fit_corruptions: list | None = None
    num_groups: int = 0
    group_level: float | None = None
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
            raise ConfigError(f"interval level {level!r} was not fitted; the calibration holds {self.levels}")
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
        missing = [name for name in ("levels", "level", "signals", "keys") if name not in data]
        if missing:
            raise DataError(f"the conformal calibration lacks {missing[0]!r}; fit it again")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in fields})


def calibration_path(run_dir):
    """`<run_dir>/conformal_calibration.json`."""
    from pathlib import Path

    return Path(run_dir) / CALIBRATION_FILE


def load(run_dir):
    """The run's `ConformalCalibration`, or None when the run directory has no conformal_calibration.json."""
    from pipelines.core.io_utils import read_json

    path = calibration_path(run_dir)
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ValueError as error:
        raise DataError(f"not valid JSON ({error})", path) from None
    try:
        return ConformalCalibration.from_json(data)
    except (DataError, TypeError) as error:
        raise DataError(getattr(error, "message", f"unexpected content ({error}); fit it again"), path) from None


def save(calibration, run_dir):
    """Writes `calibration` to `<run_dir>/conformal_calibration.json` atomically; returns the path."""
    from pipelines.core.io_utils import write_json_atomic

    path = calibration_path(run_dir)
    write_json_atomic(path, calibration.to_json())
    return path


def unit_groups(recordings, specs=DEFAULT_FIT_CORRUPTIONS) -> list:
    """The `groups` of `with_corrupted_copies(recordings, specs)`: "<spec or clean>/<name>"."""
    return [f"{spec}/{r['name']}" for spec in ("clean", *specs) for r in recordings]


def with_presence(recording) -> dict:
    """A prediction's outputs with the recording's presence flags added (signal columns `*_absent`)."""
    flags = {f"{m}_present": recording.get(f"{m}_present") for m in MODALITIES}
    return {**{k: v for k, v in flags.items() if v is not None}, **recording["outputs"]}


def fit(
    predictions,
    *,
    levels=LEVELS,
    level=LEVEL,
    normalized=False,
    num_bins=NUM_BINS,
    names=None,
    ridge=RIDGE,
    groups=None,
    min_group_frames=MIN_GROUP_FRAMES,
    group_level=GROUP_LEVEL,
    fitted_on="devel",
    fit_corruptions=None,
) -> ConformalCalibration:
    """Fits the intervals on labelled predictions (the validation partition plus corrupted copies).

    Args:
        predictions: list of recordings as from `evaluation.predict_recordings`: `outputs`, the
            labels `valence` / `arousal` (recordings without labels are left out) and optionally the
            presence flags.
        levels: the coverage levels to fit a quantile for. `level` (default 0.9) must be among them.
        normalized: scale the half-widths by the difficulty s (else one per bin). Defaults to False.
        num_bins: Mondrian categories: quantile bins of the calibration frames' difficulty.
        names: the signal columns (default: all the outputs give, less the constant ones).
        groups: optional label per recording of `predictions` (`unit_groups`); with groups, each
            bin's quantile is the conformal quantile at `group_level` (default 2/3; 1 = the
            largest) of the quantiles of the groups with at least `min_group_frames` frames there.
        fitted_on, fit_corruptions: recorded in the fit.
    """
    levels = [float(v) for v in levels]
    if not levels or any(not 0.0 < v < 1.0 for v in levels) or not any(math.isclose(level, v) for v in levels):
        raise ConfigError(f"interval levels must lie in (0, 1) and hold level {level!r}, got {levels!r}")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ConfigError(f"num_bins must be an integer >= 1, got {num_bins!r}")
    if groups is not None and len(groups) != len(predictions):
        raise ConfigError(f"groups has {len(groups)} labels for {len(predictions)} recordings")
    pairs = [(g, r) for g, r in zip(groups or [""] * len(predictions), predictions) if r.get("valence") is not None]
    labels, labelled = [g for g, _ in pairs], [r for _, r in pairs]
    if not labelled:
        raise DataError(f"no labelled recordings to fit the conformal calibration on in {fitted_on!r}")
    outputs = [with_presence(r) for r in labelled]
    common = list(available_signals(outputs[0]) if names is None else names)
    unknown = [n for n in common if n not in SIGNAL_NAMES]
    if unknown:
        raise ConfigError(f"unknown conformal signal {unknown[0]!r}; known: {', '.join(SIGNAL_NAMES)}")
    frame_groups = np.concatenate([np.full(len(_array(o, DIMENSIONS[0])), str(g)) for o, g in zip(outputs, labels)])
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
                [
                    _robust_quantile(score[bins == j], frame_groups[bins == j], value, min_group_frames, group_level)
                    for j in range(len(edges) + 1)
                ]
                for value in levels
            ]
            if not np.all(np.isfinite(quantiles)):
                raise DataError(f"too few calibration frames for {branch}_{dim} in one of its bins; use fewer bins")
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
        num_groups=len(set(map(str, labels))) if groups is not None else 0,
        group_level=float(group_level) if groups is not None else None,
        num_frames=int(sum(len(_array(o, DIMENSIONS[0])) for o in outputs)),
    )


def _robust_quantile(scores, groups, level, min_group_frames, group_level=1.0) -> float:
    """Over the groups with enough frames, the conformal quantile at `group_level` of the groups' own
    quantiles (1.0: the largest); all frames pooled when fewer than two groups have enough."""
    names, counts = np.unique(groups, return_counts=True)
    per_group = [conformal_quantile(scores[groups == g], level) for g, c in zip(names, counts) if c >= min_group_frames]
    if len(per_group) <= 1:
        return conformal_quantile(scores, level)
    return max(per_group) if group_level >= 1.0 else conformal_quantile(per_group, group_level)


def _edges(values, num_bins) -> list:
    """Inner edges of `num_bins` quantile bins of `values` (crepes' binning; ties merged). An edge that
    would leave a bin empty is dropped (a bin j holds the values with j edges below them), so a
    difficulty without spread (a model whose outputs give no signal, e.g. one modality alone) makes
    one bin: standard split conformal."""
    if num_bins <= 1:
        return []
    from crepes.extras import binning

    values = np.asarray(values, np.float64)
    _, boundaries = binning(values, bins=num_bins)
    return [float(v) for v in np.unique(boundaries[1:-1]) if values.min() <= v < values.max()]
