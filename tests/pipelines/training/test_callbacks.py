"""Tests of the training callbacks that do not need a training run."""

import math
import signal
import threading

import numpy as np
import pytest

from pipelines.evaluation.figures import plot_recording
from pipelines.training.callbacks import AveragedValidation, NanGuard


class _Model:
    stop_training = False


def test_nan_guard_names_the_term_that_went_first_and_the_last_finite_values():
    guard = NanGuard()
    guard.set_model(_Model())
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 1.5, "loss_emo": 1.2, "loss_co_visual": 0.3})
    assert guard.failed is None and not guard.model.stop_training
    guard.on_train_batch_end(1, {"loss": math.nan, "loss_emo": 1.1, "loss_co_visual": math.inf})
    assert guard.model.stop_training
    assert "epoch 3, batch 2" in guard.failed
    assert "(loss, loss_co_visual)" in guard.failed
    assert "last finite values: loss=1.5, loss_emo=1.2, loss_co_visual=0.3" in guard.failed


def test_validation_scores_the_averaged_weights_and_training_keeps_its_own():
    """training.ema_momentum: `fit`'s validation loss is the NumPy MSE of the averaged weights; the
    weights after `fit` are the training weights (finalize_to_average off), not the averages."""
    import keras

    from cold_keras.optimizers import AdamW

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = AdamW(learning_rate=0.05, use_ema=True, ema_momentum=0.5)
    optimizer.finalize_to_average = False
    model.compile(optimizer=optimizer, loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel, bias = (v.numpy() for v in optimizer.variables if v.path.endswith("_average"))
            seen.append((logs["val_loss"], float(np.mean((x @ kernel + bias - y) ** 2))))

    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), callbacks=[AveragedValidation(), Record()])
    for val_loss, numpy_loss in seen:
        assert val_loss == pytest.approx(numpy_loss, rel=1e-5)
    averages = [v.numpy() for v in optimizer.variables if v.path.endswith("_average")]
    assert not np.array_equal(model.layers[0].kernel.numpy(), averages[0])


def test_timeline_figure_is_a_png_of_the_recording():
    frames = 50
    time = np.linspace(0, 1, frames)
    recording = {
        "name": "Devel_SY_01",
        "valence": np.sin(time),
        "arousal": np.cos(time),
        "visual_corrupted": time > 0.5,
    }
    outputs = {
        "valence": np.sin(time) * 0.9,
        "arousal": np.cos(time) * 0.9,
        "audio_valence": np.zeros(frames),
        "audio_arousal": np.zeros(frames),
        "visual_valence": np.zeros(frames),
        "visual_arousal": np.zeros(frames),
        "audio_weight": np.full(frames, 0.4),
        "visual_weight": np.full(frames, 0.6),
    }
    png = plot_recording(recording, outputs, 0.1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_interrupt_guard_raises_once_ctrl_c_was_requested(monkeypatch):
    from pipelines.core import errors
    from pipelines.training import callbacks

    monkeypatch.setattr(errors, "_INTERRUPTED", threading.Event())
    guard = callbacks.InterruptGuard()
    guard.on_train_batch_end(0)  # nothing requested: no exception
    errors._INTERRUPTED.set()
    with pytest.raises(KeyboardInterrupt):
        guard.on_train_batch_end(1)
    with pytest.raises(KeyboardInterrupt):
        guard.on_epoch_end(0)


def test_an_error_after_ctrl_c_exits_as_the_interrupt_and_one_without_keeps_its_traceback(monkeypatch, capsys):
    from pipelines.core import errors

    monkeypatch.setattr(errors, "_INTERRUPTED", threading.Event())

    @errors.cli_main
    def command():
        raise TypeError("Failed to convert elements of (None, 60) to Tensor")

    with pytest.raises(TypeError, match="Failed to convert"):
        command()
    errors._INTERRUPTED.set()  # Ctrl-C arrived while the library ran: its re-wrapped interrupt
    with pytest.raises(SystemExit) as exited:
        command()
    assert exited.value.code == 130
    assert capsys.readouterr().err.strip() == errors.INTERRUPTED_LINE


def test_a_command_called_from_python_gives_back_the_callers_sigint_handler():
    from pipelines.core import errors

    def callers_handler(signum, frame):
        return None

    before = signal.signal(signal.SIGINT, callers_handler)
    try:
        during = []

        @errors.cli_main
        def main():
            during.append(signal.getsignal(signal.SIGINT))

        main()
        assert during == [errors._on_sigint]  # Ctrl-C is the command's while it runs
        assert signal.getsignal(signal.SIGINT) is callers_handler
    finally:
        signal.signal(signal.SIGINT, before)
