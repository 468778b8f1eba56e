"""Training callbacks: TensorBoard figures and histograms, learning rate, NaN guard."""

from __future__ import annotations

import io
import math

import keras
import numpy as np
import tensorflow as tf

from cold_keras import metrics as cold_metrics
from pipelines import evaluation, features
from pipelines.errors import interrupt_requested

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
        """What a resumed run needs (`pipelines.backup.StepBackup.track`)."""
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


def plot_recording(recording, outputs, hop, title=None):
    """Label, unimodal and fused predictions, and the fusion weights over time (paper Fig. 5/6).

    With `<dim>_lower` / `<dim>_upper` in `outputs` the fused prediction's interval is drawn as a
    band; frames where a modality is absent (`audio_present` / `visual_present` 0, in `outputs` or
    the recording) are shaded grey on the weight panel.

    Used by the TensorBoard callback below and by the evaluator's timelines.

    Args:
        recording: dict from `input_pipeline.iter_recordings` (labels; optional per-frame
            `audio_corrupted` / `visual_corrupted` flags are shaded on the weight panel).
        outputs: dict of per-frame NumPy outputs of the inference model ([N] each; classification
            outputs converted to one value per frame by the caller).
        hop: float. Seconds between frames.
        title: optional str above the figure (e.g. the recording's name).

    Returns:
        bytes: the figure as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = [key for key in ("audio_weight", "visual_weight") if key in outputs]
    rows = 2 + (1 if weights else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.4 * rows), sharex=True)
    time = np.arange(len(outputs[features.VALENCE])) * hop
    for ax, dim in zip(axes, features.LABEL_KEYS):
        label = recording.get(dim)
        if label is not None:
            ax.plot(time, np.broadcast_to(np.asarray(label, np.float32), time.shape), "k", lw=1.5, label="label")
        for key, style, name in (
            (f"audio_{dim}", "tab:blue", "audio"),
            (f"visual_{dim}", "tab:orange", "visual"),
            (dim, "tab:green", "fused"),
        ):
            if key in outputs and np.ndim(outputs[key]) == 1:
                ax.plot(time, outputs[key], color=style, lw=1, label=name)
        if f"{dim}_lower" in outputs and f"{dim}_upper" in outputs:
            ax.fill_between(
                time,
                outputs[f"{dim}_lower"],
                outputs[f"{dim}_upper"],
                color="tab:green",
                alpha=0.2,
                lw=0,
                label="interval",
            )
        ax.set_ylabel(dim)
        ax.set_ylim(-1.1, 1.1)
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    if weights:
        ax = axes[-1]
        for key, color in zip(weights, ("tab:blue", "tab:orange")):
            ax.plot(time, outputs[key], color=color, lw=1, label=key.replace("_", " "))
        shaded = 0
        for key, color in (("audio_corrupted", "tab:blue"), ("visual_corrupted", "tab:orange")):
            flags = recording.get(key)
            if flags is not None and len(flags) == len(time) and np.asarray(flags, bool).any():
                ax.fill_between(
                    time,
                    0,
                    1,
                    where=np.asarray(flags, bool),
                    color=color,
                    alpha=0.12,
                    lw=0,
                    label=f"{key.split('_')[0]} corrupted (shaded)",
                )
                shaded += 1
        for key, hatch in (("audio_present", "//"), ("visual_present", "\\\\")):
            present = outputs.get(key, recording.get(key))
            if present is not None and len(present) == len(time) and (np.asarray(present) == 0).any():
                ax.fill_between(
                    time,
                    0,
                    1,
                    where=np.asarray(present) == 0,
                    color="grey",
                    alpha=0.2,
                    hatch=hatch,
                    lw=0,
                    label=f"{key.split('_')[0]} absent",
                )
                shaded += 1
        ax.set_ylim(0, 1)
        ax.set_ylabel("fusion weight")
        ax.legend(loc="upper right", fontsize=7, ncol=2 + shaded)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or str(recording.get("name", "")))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


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
