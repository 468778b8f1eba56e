"""Training stability: a collapse detector for the trainer and per-epoch diagnostics.

A regression model has collapsed when its predictions stop following the labels: the training
CCC falls to about 0 after it had been rising, or stays at about 0 because the predictions are
(nearly) constant. The usual cause is a learning rate too high for the model and corpus: the
frame-wise output pre-activations grow until the tanh output saturates at +-1, where its gradient
vanishes, so the model cannot come back (see docs/training.md, "Training stability").
"""

from __future__ import annotations

import math

import keras
import numpy as np

# Training CCC below this counts as "near 0".
COLLAPSE_CCC = 0.05
# A fall of at least this much from the best earlier epoch counts as "falling".
COLLAPSE_DROP = 0.02
# |tanh output| above this is saturated (pre-activation |x| > 3.0: tanh' < 0.01).
SATURATED = 0.995


def collapse_message(history, constant_predictions=False):
    """One line saying the run collapsed and what to try, or None if it did not.

    Args:
        history: list of per-epoch training CCC values (epoch 1 first).
        constant_predictions: bool. The predictions of the last epoch were (nearly) constant.

    A run has collapsed when the last epoch's CCC is below `COLLAPSE_CCC` and either it fell by
    at least `COLLAPSE_DROP` from the best earlier epoch, or the predictions are constant.
    """
    values = [float(v) for v in history if v is not None and math.isfinite(float(v))]
    if not values:
        return None
    last = values[-1]
    if last >= COLLAPSE_CCC:
        return None
    earlier = values[:-1]
    best = max(earlier) if earlier else None
    falling = best is not None and best - last >= COLLAPSE_DROP
    if not (falling or constant_predictions):
        return None
    what = (
        f"training CCC fell from {best:.3f} (epoch {earlier.index(best) + 1}) to {last:.3f} (epoch {len(values)})"
        if falling
        else f"training CCC is {last:.3f} at epoch {len(values)}"
    )
    if constant_predictions:
        what += " and the predictions are constant"
    return (
        f"warning: the model has collapsed: {what}; try a lower --learning-rate (python -m pipelines.train "
        "... --find-lr suggests one) or a smaller training.clipnorm"
    )


def prediction_stats(values, mask=None):
    """(std, fraction saturated) of regression predictions over the valid frames."""
    values = np.asarray(values, np.float64)
    if mask is not None:
        values = values[np.asarray(mask) > 0]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.std()), float(np.mean(np.abs(values) > SATURATED))


class CollapseGuard(keras.callbacks.Callback):
    """Watches the training CCC (`ccc_mean` in the epoch logs) and prints one line on a collapse.

    Training goes on (the best validation checkpoint is kept anyway); `message` holds the line
    afterwards, None if the run did not collapse. A run whose logs hold no `ccc_mean`
    (classification) is not watched.

    Args:
        print_fn: callable taking the line (default `print`).
    """

    def __init__(self, print_fn=print):
        super().__init__()
        self.history = []
        self.message = None
        self._print = print_fn

    def resume_state(self):
        """What a resumed run needs (`pipelines.runs.backup.StepBackup.track`)."""
        return {"history": list(self.history), "message": self.message}

    def restore_state(self, state):
        self.history = list((state or {}).get("history", []))
        self.message = (state or {}).get("message")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "ccc_mean" not in logs:
            return
        self.history.append(float(logs["ccc_mean"]))
        # CCC exactly 0 (to 1e-4) is what a constant prediction gives.
        constant = len(self.history) > 1 and abs(self.history[-1]) < 1e-4
        message = collapse_message(self.history, constant_predictions=constant)
        if message and self.message is None:
            self.message = message
            self._print(message)


class GradientDiagnostics(keras.callbacks.Callback):
    """Per epoch, on one fixed training batch: global gradient norm, prediction spread and saturation.

    `records` holds one dict per epoch: `epoch`, `ccc_mean` (training, from the logs),
    `grad_norm` (global norm of the loss gradient over all trainable weights, before any
    clipping), `pred_std` and `saturated` (std of the fused predictions and fraction of frames
    with |prediction| > 0.995, i.e. a tanh pre-activation beyond +-3, over both dimensions).

    Args:
        batch: dict of one training batch (features and targets, as the training model takes).
        output_keys: prediction outputs to measure (default the fused "valence", "arousal").
    """

    def __init__(self, batch, output_keys=("valence", "arousal"), print_fn=None):
        super().__init__()
        self.batch = batch
        self.output_keys = tuple(output_keys)
        self.records = []
        self._print = print_fn

    def measure(self):
        import tensorflow as tf

        model = self.model
        with tf.GradientTape() as tape:
            outputs = model(self.batch, training=True)
            loss = tf.add_n([tf.cast(term, "float32") for term in model.losses])
        grads = [g for g in tape.gradient(loss, model.trainable_variables) if g is not None]
        norm = float(tf.linalg.global_norm(grads))
        outputs = model(self.batch, training=False)
        values = np.concatenate([np.asarray(outputs[key]).reshape(-1) for key in self.output_keys])
        mask = np.concatenate([np.asarray(self.batch["mask"]).reshape(-1)] * len(self.output_keys))
        std, saturated = prediction_stats(values, mask)
        return {"grad_norm": norm, "pred_std": std, "saturated": saturated, "loss": float(loss)}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.records.append(
            {"epoch": epoch + 1, "ccc_mean": float(logs.get("ccc_mean", float("nan"))), **self.measure()}
        )
        if self._print is not None:
            self._print(" ".join(f"{key} {value:.4g}" for key, value in self.records[-1].items()))
