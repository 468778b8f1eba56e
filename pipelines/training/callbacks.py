"""Training callbacks: TensorBoard figures and histograms, learning rate, NaN guard, averaged-weight validation."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from cold_keras import metrics as cold_metrics
from pipelines.core.errors import interrupt_requested
from pipelines.data import features
from pipelines.evaluation import scoring as evaluation
from pipelines.evaluation.figures import plot_recording

LOSS_TERMS = ("loss", "loss_emo", "loss_co_visual", "loss_co_audio", "loss_co_cross", "loss_regu")


class InterruptGuard(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the next batch once Ctrl-C was requested.

    Python delivers SIGINT as a KeyboardInterrupt in whatever the main thread runs at that moment;
    when that is a finaliser the exception is dropped and training would go on. The command's
    signal handler also sets a flag (`errors.interrupt_requested`), which this callback polls.
    """

    def _check(self, *args, **kwargs):
        if interrupt_requested():
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check


def uses_average_weights(model) -> bool:
    """True when the model's optimiser keeps a moving average of the weights (`training.ema_momentum`)."""
    return bool(getattr(model.optimizer, "use_ema", False)) and hasattr(model.optimizer, "swap_average_weights")


class AveragedValidation(keras.callbacks.Callback):
    """Validates with the optimiser's moving average of the weights (`training.ema_momentum` > 0).

    `keras.callbacks.SwapEMAWeights` swaps by additions and subtractions, which changes the training
    weights by rounding errors at every validation; this one exchanges them exactly
    (`cold_keras.optimizers.AdamW.swap_average_weights`), so the training weights after a validation
    are those before it and a resumed run stays the uninterrupted one. Nothing happens when the
    optimiser keeps no average.
    """

    def __init__(self):
        super().__init__()
        self._swapped = False

    def on_test_begin(self, logs=None):
        if uses_average_weights(self.model) and not self._swapped:
            self.model.optimizer.swap_average_weights()
            self._swapped = True

    def on_test_end(self, logs=None):
        if self._swapped:
            self.model.optimizer.swap_average_weights()
            self._swapped = False


class NanGuard(keras.callbacks.Callback):
    """Stops training when the loss becomes NaN or infinite, naming the last loss terms.

    Unlike `keras.callbacks.TerminateOnNaN` it remembers the last finite values of every loss
    term, so the message says which term went first. `failed` holds the message afterwards.
    """

    def __init__(self):
        super().__init__()
        self.failed = None
        self._last_finite = {}
        self._epoch = 0

    def resume_state(self):
        """What a resumed run needs (`pipelines.runs.backup.StepBackup.track`)."""
        return {"last_finite": dict(self._last_finite)}

    def restore_state(self, state):
        self._last_finite = dict((state or {}).get("last_finite", {}))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        terms = {name: float(logs[name]) for name in LOSS_TERMS if name in logs}
        bad = [name for name, value in terms.items() if not math.isfinite(value)]
        if not bad:
            self._last_finite = terms
            return
        last = ", ".join(f"{name}={value:.4g}" for name, value in self._last_finite.items()) or "none recorded"
        now = ", ".join(f"{name}={value:.4g}" for name, value in terms.items())
        self.failed = (
            f"loss became non-finite at epoch {self._epoch + 1}, batch {batch + 1} "
            f"({', '.join(bad)}); now {now}; last finite values: {last}"
        )
        self.model.stop_training = True


class TensorBoardExtras(keras.callbacks.Callback):
    """Per epoch: learning rate, fusion-weight and sigma-norm histograms, and a timeline figure.

    Args:
        log_dir: str. The run's `tensorboard/` folder (written under `validation/extras`).
        inference_model: keras.Model taking audio/visual/mask (shares weights with the model
            being trained).
        recording: dict from `input_pipeline.iter_recordings`: the fixed validation recording.
        max_frames: int. The figure shows at most this many frames.
    """

    def __init__(self, log_dir, inference_model, recording, max_frames=1500):
        super().__init__()
        self.inference_model = inference_model
        self.recording = dict(recording)
        for key in (
            features.AUDIO,
            features.VISUAL,
            features.AUDIO_PRESENT,
            features.VISUAL_PRESENT,
            "audio_corrupted",
            "visual_corrupted",
        ):
            if self.recording.get(key) is not None:
                self.recording[key] = np.asarray(self.recording[key])[:max_frames]
        for key in features.LABEL_KEYS:
            value = self.recording.get(key)
            if value is not None and np.ndim(value) == 1:
                self.recording[key] = np.asarray(value)[:max_frames]
        self.writer = tf.summary.create_file_writer(str(log_dir))

    def _learning_rate(self):
        optimizer = self.model.optimizer
        rate = optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(rate))

    def on_epoch_end(self, epoch, logs=None):
        audio = np.asarray(self.recording[features.AUDIO], np.float32)[None]
        visual = np.asarray(self.recording[features.VISUAL], np.float32)[None]
        mask = np.ones(audio.shape[:2], np.float32)
        presence = [
            None if self.recording.get(key) is None else np.asarray(self.recording[key], np.float32)[None]
            for key in (features.AUDIO_PRESENT, features.VISUAL_PRESENT)
        ]
        outputs = self.inference_model.predict_on_batch(
            evaluation.model_inputs(self.inference_model, audio, visual, mask, *presence)
        )
        outputs = {key: np.asarray(value, np.float32)[0] for key, value in outputs.items()}
        if outputs[features.VALENCE].ndim == 2:  # classification: plot the expected bin value
            for key in list(outputs):
                value = outputs[key]
                if value.ndim == 2 and value.shape[-1] == features.NUM_CLASSES:
                    outputs[key] = cold_metrics.softmax(value) @ np.array([-1.0, 0.0, 1.0])
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("learning_rate", self._learning_rate())
            for key in ("audio_weight", "visual_weight", "audio_sigma_norm", "visual_sigma_norm"):
                if key in outputs:
                    tf.summary.histogram(key, outputs[key])
            png = plot_recording(self.recording, outputs, float(self.recording.get("hop", 0.1)))
            image = tf.image.decode_png(png, channels=4)[None]
            tf.summary.image("validation_recording", image)
        self.writer.flush()
