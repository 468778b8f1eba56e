"""The models a prediction runs: a run directory's Keras model or an exported SavedModel.

Both are called on one recording (a dict of arrays without the batch axis) and give its outputs as
a dict of arrays without the batch axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.errors import ConfigError, DataError
from pipelines.data import features


class KerasPredictor:
    """The inference model of a run directory."""

    def __init__(self, run_dir, level=None):
        from pipelines.evaluation import intervals, uncertainty
        from pipelines.runs import folders as runs
        from pipelines.serving import servable

        self.model, config = runs.load_inference_model(run_dir)
        self.dims = servable.feature_dims(self.model)
        # The run's calibrated per-frame std (`python -m pipelines.uncertainty`, or the evaluator, fits it on
        # the validation partition), as the exported SavedModel gives it as outputs.
        self.calibration = None
        if config.task == "regression" and (Path(run_dir) / uncertainty.CALIBRATION_FILES["native"]).is_file():
            self.calibration = uncertainty.Calibration.load(run_dir, "native")
        # Its conformal intervals at `level` (`*_lower`, `*_upper`), as the SavedModel gives them at 0.9.
        self.conformal, self.level = None, level
        if config.task == "regression" and level is not None:
            self.conformal = intervals.load(run_dir)
        if self.conformal is not None and not any(abs(level - v) < 1e-9 for v in self.conformal.levels):
            raise ConfigError(
                f"--level {level:g}: the conformal intervals are fitted at "
                f"{', '.join(f'{v:g}' for v in self.conformal.levels)}",
                intervals.calibration_path(run_dir),
            )

    def __call__(self, recording: dict) -> dict:
        from pipelines.evaluation import conformal, intervals
        from pipelines.evaluation import scoring as evaluation

        prediction = evaluation.predict_recordings(self.model, [recording])[0]
        outputs = prediction["outputs"]
        if self.calibration is not None:
            outputs = {**outputs, **self.calibration.std(outputs)}
        if self.conformal is not None:
            found = intervals.bounds(conformal.with_presence(prediction), self.conformal, self.level)
            outputs = {**outputs, **{key: value.astype(np.float32) for key, value in found.items()}}
        return outputs


class SavedModelPredictor:
    """An exported SavedModel's `serving_default` signature, through plain TensorFlow."""

    def __init__(self, path):
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, RuntimeError) as error:
            raise DataError(f"cannot load the SavedModel ({str(error).splitlines()[0]})", path) from None
        signatures = getattr(loaded, "signatures", {})
        if "serving_default" not in signatures:
            raise DataError(
                "the SavedModel has no serving_default signature; export it with python -m pipelines.export", path
            )
        self._loaded = loaded  # keeps the variables alive
        self.signature = signatures["serving_default"]
        specs = self.signature.structured_input_signature[1]
        self.inputs = set(specs)
        missing = {features.AUDIO, features.VISUAL} - self.inputs
        if missing:
            raise DataError(f"the serving_default signature has no input {sorted(missing)[0]!r}", path)
        self.dims = {key: int(specs[key].shape[-1]) for key in features.MODALITIES}
        self.tf = tf

    def __call__(self, recording: dict) -> dict:
        tf = self.tf
        audio = np.asarray(recording[features.AUDIO], np.float32)[None]
        inputs = {features.AUDIO: audio, features.VISUAL: np.asarray(recording[features.VISUAL], np.float32)[None]}
        ones = np.ones(audio.shape[:2], np.float32)
        if features.MASK in self.inputs:
            inputs[features.MASK] = ones
        for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT):
            if key in self.inputs:
                value = recording.get(key)
                inputs[key] = ones if value is None else np.asarray(value, np.float32)[None]
        outputs = self.signature(**{key: tf.constant(value) for key, value in inputs.items()})
        return {name: np.asarray(value, np.float32)[0] for name, value in outputs.items()}
