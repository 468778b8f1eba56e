"""A run's prediction intervals: its conformal calibration file, how it is fitted, and the bounds.

Every frame-level regression run gets two calibrations at the end of training, from one pass of
predictions over the validation partition and a corrupted copy of it per `DEFAULT_FIT_CORRUPTIONS`
(a raw-mode run: those that apply to face crops, noise, swap and zeros; `fit_corruptions_for`):

* `uncertainty_calibration.json`: the isotonic score -> std map (`pipelines.evaluation.uncertainty`),
  fitted on the clean validation recordings, which gives the `*_std` outputs;
* `conformal_calibration.json`: the reliability-aware conformal intervals
  (`pipelines.evaluation.conformal`), fitted on all of them, which give the `*_lower` / `*_upper`
  bounds of the evaluator, of `pipelines.predict` and of the exported model.

A run trained before the conformal fit existed has no `conformal_calibration.json`: its intervals are
mu -+ z std of the isotonic std, and `python -m pipelines.uncertainty --run-dir RUN` adds the file.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.config.settings import as_run_config
from pipelines.core.errors import DataError
from pipelines.evaluation import conformal
from pipelines.evaluation import uncertainty as uncertainty_lib

CALIBRATION_FILE = conformal.CALIBRATION_FILE
LOWER, UPPER = "_lower", "_upper"
# Outputs kept from the calibration recordings' predictions (the features are dropped as soon as a
# copy is predicted, so that eight copies of the validation partition never sit in memory at once).
_RECORDING_KEYS = ("name", "valence", "arousal", "audio_present", "visual_present", "hop", "timestamps")


calibration_path, load, save = conformal.calibration_path, conformal.load, conformal.save


def missing_hint(run_dir) -> str:
    """The one line said when a run has no conformal calibration."""
    return (
        f"note: {run_dir} has no {CALIBRATION_FILE} (trained before the trainer fitted one), so its intervals "
        f"are the isotonic ones; add it with python -m pipelines.uncertainty --run-dir {run_dir}"
    )


def fit_corruptions_for(config) -> tuple:
    """The corrupted copies a run's conformal fit uses: `DEFAULT_FIT_CORRUPTIONS`, less the in-range
    kinds (frozen, drift, desync, dropout) for a raw-mode run, whose face crops they do not apply to."""
    from pipelines.data import corrupt

    if as_run_config(config).mode != "raw":
        return conformal.DEFAULT_FIT_CORRUPTIONS
    return tuple(
        spec for spec in conformal.DEFAULT_FIT_CORRUPTIONS if corrupt.parse_corruption(spec)[2] in corrupt.FEATURE_MODES
    )


def calibration_predictions(inference_model, recordings, specs=conformal.DEFAULT_FIT_CORRUPTIONS, progress=None):
    """Predictions of `recordings` and of one corrupted copy of them per spec (the order of
    `conformal.unit_groups`), without their input features."""
    from pipelines.data import corrupt
    from pipelines.evaluation import scoring as evaluation

    recordings = list(recordings)
    out = []
    for k, spec in enumerate(("clean", *specs)):
        batch = recordings
        if spec != "clean":
            batch = uncertainty_lib.with_corrupted_copies(recordings, [corrupt.parse_corruption(spec)], seed=k)
            batch = batch[len(recordings) :]
        for prediction in evaluation.predict_recordings(inference_model, batch):
            item = {key: prediction[key] for key in _RECORDING_KEYS if prediction.get(key) is not None}
            out.append({**item, "outputs": prediction["outputs"]})
        if progress:
            progress(spec)
    return out


def fit_for_run(run_dir, inference_model, config, artifact_dir, *, isotonic=True, verbose=True):
    """Fits the run's conformal calibration (and, with `isotonic`, the native isotonic one on the clean
    part of the same predictions) on the validation partition plus its corrupted copies, writes them
    into the run directory; returns (isotonic calibration or None, conformal calibration or None when
    the validation partition is too small for it: a note says so and the run keeps the isotonic intervals)."""
    from pipelines.components import input_pipeline

    config = as_run_config(config)
    validation = config.training.validation_partition
    recordings = list(input_pipeline.iter_recordings(artifact_dir, validation))
    specs = fit_corruptions_for(config)
    predictions = calibration_predictions(inference_model, recordings, specs)
    fitted_isotonic = None
    if isotonic:
        fitted_isotonic = uncertainty_lib.fit_calibration(
            predictions[: len(recordings)], convention=config.model.weight_convention, fitted_on=validation
        )
        fitted_isotonic.save(run_dir)
        if verbose:
            print(
                f"uncertainty calibration (native) fitted on {validation}: "
                f"{Path(run_dir) / uncertainty_lib.CALIBRATION_FILES['native']}"
            )
    try:
        fitted = conformal.fit(
            predictions,
            groups=conformal.unit_groups(recordings, specs),
            fitted_on=validation,
            fit_corruptions=specs,
        )
    except DataError as error:  # e.g. a validation partition too small for the bins: keep the isotonic intervals
        # Said even under --quiet: the run's intervals are not the default kind.
        print(f"note: no conformal intervals for this run ({error.message}); its intervals are the isotonic ones")
        return fitted_isotonic, None
    path = save(fitted, run_dir)
    if verbose:
        print(f"conformal intervals fitted on {validation} + {len(specs)} corrupted copies: {path}")
    return fitted_isotonic, fitted


def bounds(outputs, calibration, level=None) -> dict:
    """`<prediction>_lower` / `_upper` of one recording's outputs (plus its presence flags, see
    `conformal.with_presence`) at `level` (default: the calibration's, 0.9)."""
    found = calibration.bounds(outputs, level)
    return {key: value for key, value in found.items() if key.endswith((LOWER, UPPER))}


def attach_bounds(predictions, calibration, level=None) -> list:
    """The predictions with the conformal `*_lower` / `*_upper` bounds added to their outputs."""
    return [
        {**r, "outputs": {**r["outputs"], **bounds(conformal.with_presence(r), calibration, level)}}
        for r in predictions
    ]
