"""Per-frame predictive uncertainty in label units: the calibration of `python -m pipelines.uncertainty`.

A model's own uncertainty score is not an error bar: COLD's sigma is a latent-space scale, MC dropout's
and a deep ensemble's spread are in label units but not calibrated. For every branch (`av`, `audio`,
`visual`) and dimension this module fits, on the run's validation partition only, a monotone map

    std(u) = scale * g(u)

from the score u of a frame to a standard deviation of its error, and applies it anywhere:

* u, the uncertainty score (larger = less reliable; `pipelines.evaluation.uncertainty_scores`):
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
the exported SavedModel's signature) as outputs `valence_std` and `arousal_std` (and per branch), with
the layer `cold_keras.layers.CalibratedStd`. `calibration_for` reads a run's calibration or fits it on
the run's validation partition. The evaluator's figures of the calibrated std are in
`pipelines.evaluation.uncertainty_report`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from pipelines.config.settings import as_run_config
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.io_utils import read_json, write_json_atomic
from pipelines.data import features
from pipelines.evaluation.uncertainty_scores import (
    BRANCH_PREFIXES,
    DEFAULT_PASSES,
    predictor,
    score_description,
    uncertainty_scores,
)

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
STD_SUFFIX = "_std"


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

    config = as_run_config(config)
    validation = config.training.validation_partition
    recordings = list(input_pipeline.iter_recordings(artifact_dir, validation))
    specs = list(fit_corruptions or ())
    recordings = with_corrupted_copies(recordings, [corrupt.parse_corruption(spec) for spec in specs])
    predictions = predictor(method, passes=passes, seed=seed)(inference_model, recordings)
    convention = config.model.weight_convention
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


def with_std_outputs(model, calibration, conformal=None):
    """A Keras model with the inputs of `model` and its outputs plus the calibrated `*_std` outputs
    (native calibration: the layer `cold_keras.layers.CalibratedStd`, a piecewise-linear interpolation of
    the score in Keras ops) and, given a `ConformalCalibration`, its 90% bounds `*_lower`, `*_upper`
    (the layer `cold_keras.layers.ConformalBounds`, fed the outputs, the mask and the presence flags),
    so that the exported SavedModel's signature carries `valence_std`, `valence_lower`, ... (and per
    branch). `calibration` may be None when only the bounds are wanted."""
    import keras

    from cold_keras.layers.calibrated_std import CalibratedStd
    from cold_keras.layers.conformal_bounds import ConformalBounds

    if calibration is not None and calibration.method != "native":
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
    if calibration is not None:
        std_layer = CalibratedStd(calibration.maps, calibration.convention, name="calibrated_std")
        outputs.update(std_layer(outputs))
    if conformal is not None:
        bounds_layer = ConformalBounds.from_calibration(conformal.to_json(), name="conformal_bounds")
        extra = {key: inputs[key] for key in (features.MASK, *features.PRESENT_KEYS.values()) if key in inputs}
        outputs.update(bounds_layer({**outputs, **extra}))
    return keras.Model(inputs=inputs, outputs=outputs, name=f"{model.name}_with_std")


def servable_model(model, run_dir, config, artifact_dir):
    """`model` with the run's calibrated `*_std` outputs when the run directory holds a native
    calibration (`python -m pipelines.uncertainty --run-dir RUN`, or any regression evaluation, writes
    it) and with the `*_lower` / `*_upper` bounds of its conformal intervals when it holds
    `conformal_calibration.json` (the trainer writes both), else `model` unchanged."""
    from pipelines.evaluation import conformal as conformal_lib

    if as_run_config(config).task != "regression":
        return model
    native = (Path(run_dir) / CALIBRATION_FILES["native"]).is_file()
    conformal = conformal_lib.load(run_dir)
    if not native and conformal is None:
        return model
    return with_std_outputs(model, Calibration.load(run_dir, "native") if native else None, conformal)
