"""Learned audio-visual correspondence: do a window of audio and a window of visual features belong
to the same moment of the same recording? Trained self-supervised, like SyncNet and L3-Net."""

import keras
from keras import ops

from cold_keras.layers.reliability import masked_moving_average

DEFAULT_UNITS = 32
DEFAULT_WINDOW_RADIUS = 20
DEFAULT_DILATION = 2
DEFAULT_SMOOTHING_RADIUS = 10
# Two recordings' audio closer than this (mean absolute difference of the standardised features)
# count as the same audio: the two partners of a dyadic corpus such as AVEC 2019 CES share the
# conversation's audio, so the partner's face is no negative for it.
SAME_AUDIO_TOLERANCE = 1e-4


def correspondence_logits(audio_windows, visual_windows, hidden_kernel_bias, output_kernel, output_bias):
    """Logit of "aligned" from per-frame window projections (the scoring head, shared by the
    aligned pairs and the negatives): l_t = w^T relu(p_A,t + p_V,t + b) + c."""
    hidden = ops.relu(audio_windows + visual_windows + hidden_kernel_bias)
    return ops.squeeze(ops.matmul(hidden, output_kernel), -1) + output_bias


def center(x, m):
    """`[B, T, D]` features minus their mean over each sequence's real frames (`m` `[B, T, 1]`), zero
    elsewhere. A recording's (speaker's) constant offset says which recording a stream comes from,
    not whether the two streams move together: without it the scorer cannot learn to pair
    recordings by their offsets, which would not carry over to new speakers."""
    x = ops.cast(x, "float32") * m
    return (x - ops.sum(x, axis=1, keepdims=True) / ops.maximum(ops.sum(m, axis=1, keepdims=True), 1.0)) * m


def _masked_mean(x, mask):
    return ops.sum(x * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="cold_keras")
class AudioVisualCorrespondence(keras.layers.Layer):
    """Per frame, how strongly the two streams disagree about being the same moment of one recording.

        a, v = the features minus their mean over the sequence's real frames (zero elsewhere)
        p_A = conv_A(a), p_V = conv_V(v)   (Conv1D over +-`window_radius` frames, `dilation` apart)
        l_t = w^T relu(p_A,t + p_V,t + b) + c       (logit of "aligned")
        m_t = max(0, -mean_{|s - t| <= smoothing_radius} l_s)

    m_t is 0 while the scorer finds the windows more likely aligned than not, and grows (in nats of
    evidence) with the evidence that the visual window belongs to another moment or another
    recording. No gradient leaves through m: the scorer learns only from its own loss.

    Training (self-supervised, no labels, no corruption flags): the loss is added with `add_loss`,

        L_C = lambda * [BCE(l(a, v), 1) + (BCE(l(a, v shifted), 0) + BCE(l(a, v other), 0)) / 2]

    each term a mean over its valid frames. "Shifted" is the same sequence's visual stream rolled
    in time by a random shift of at least `window_radius` frames (one per sequence); "other" is
    another sequence of the batch (rolled by a random number of sequences), left out where its
    audio equals this sequence's audio (the partners of a dyadic corpus share one audio stream).
    The shifts come from a seeded `keras.random.SeedGenerator`, so a resumed fit draws the same.

    Args:
        units: int. Hidden units of the scorer. Defaults to 32.
        window_radius: int. Half-width of the windows in frames. Defaults to 20.
        dilation: int. Frames between the taps of a window. Defaults to 2.
        smoothing_radius: int >= 0. Smoothing of the logits in frames. Defaults to 10.
        loss_weight: float >= 0. lambda of L_C. Defaults to 1.
        seed: int or None. Seed of the negatives. Defaults to None.

    Call arguments:
        audio: `[B, T, Da]` standardised audio features.
        visual: `[B, T, Dv]` standardised visual features.
        frame_mask: `[B, T]` frames where both modalities are real.
        training: bool. Adds L_C (True) or not.

    Output: `(mismatch, logit)`, `[B, T, 1]` m_t >= 0 and `[B, T]` l_t, both 0 outside the mask.

    >>> layer = AudioVisualCorrespondence(units=4, window_radius=2, dilation=1)
    >>> mismatch, logit = layer(keras.ops.zeros((1, 6, 3)), keras.ops.zeros((1, 6, 2)), keras.ops.ones((1, 6)))
    >>> tuple(mismatch.shape)
    (1, 6, 1)
    """

    def __init__(
        self,
        units=DEFAULT_UNITS,
        window_radius=DEFAULT_WINDOW_RADIUS,
        dilation=DEFAULT_DILATION,
        smoothing_radius=DEFAULT_SMOOTHING_RADIUS,
        loss_weight=1.0,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        for key, value, low in (("units", units, 1), ("window_radius", window_radius, 1), ("dilation", dilation, 1)):
            if isinstance(value, bool) or int(value) != value or int(value) < low:
                raise ValueError(f"AudioVisualCorrespondence {key} must be an integer >= {low}, got {value!r}.")
        if int(window_radius) % int(dilation):
            raise ValueError(
                f"AudioVisualCorrespondence window_radius ({window_radius}) must be a multiple of "
                f"dilation ({dilation})."
            )
        if int(smoothing_radius) < 0:
            raise ValueError(f"AudioVisualCorrespondence smoothing_radius must be >= 0, got {smoothing_radius!r}.")
        if not float(loss_weight) >= 0:
            raise ValueError(f"AudioVisualCorrespondence loss_weight must be >= 0, got {loss_weight!r}.")
        self.units = int(units)
        self.window_radius = int(window_radius)
        self.dilation = int(dilation)
        self.smoothing_radius = int(smoothing_radius)
        self.loss_weight = float(loss_weight)
        self.seed = seed
        taps = 2 * self.window_radius // self.dilation + 1
        conv = dict(kernel_size=taps, dilation_rate=self.dilation, padding="same", dtype=self.dtype_policy)
        self.audio_window = keras.layers.Conv1D(self.units, use_bias=False, name="audio_window", **conv)
        self.visual_window = keras.layers.Conv1D(self.units, use_bias=False, name="visual_window", **conv)
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self.loss_tracker = keras.metrics.Mean(name="loss_correspondence")

    def build(self, audio_shape, visual_shape, frame_mask_shape=None):
        self.audio_window.build(tuple(audio_shape))
        self.visual_window.build(tuple(visual_shape))
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.units,), initializer="zeros")
        self.output_kernel = self.add_weight(name="output_kernel", shape=(self.units, 1), initializer="glorot_uniform")
        self.output_bias = self.add_weight(name="output_bias", shape=(), initializer="zeros")
        self.built = True

    def _logits(self, audio_windows, visual_windows):
        return correspondence_logits(
            audio_windows, visual_windows, self.hidden_bias, self.output_kernel, self.output_bias
        )

    def call(self, audio, visual, frame_mask, training=None):
        mask = ops.cast(frame_mask, "float32")
        m = ops.expand_dims(mask, -1)
        audio_windows = self.audio_window(center(audio, m))
        visual_windows = self.visual_window(center(visual, m))
        logit = self._logits(audio_windows, visual_windows)
        if training and self.loss_weight > 0:
            loss = self._self_supervised_loss(audio, audio_windows, visual_windows, logit, mask)
            self.add_loss(self.loss_weight * loss)
            self.loss_tracker.update_state(loss)
        smoothed = masked_moving_average(ops.expand_dims(ops.stop_gradient(logit), -1), mask, self.smoothing_radius)
        mismatch = ops.maximum(-smoothed, 0.0) * m
        return mismatch, logit * mask

    def _self_supervised_loss(self, audio, audio_windows, visual_windows, logit, mask):
        shape = ops.shape(mask)
        batch, frames = shape[0], shape[1]
        # A time shift of at least window_radius frames per sequence (a roll, so every frame has a partner).
        min_shift = self.window_radius
        span = ops.maximum(frames - 2 * min_shift, 1)
        u = keras.random.uniform((batch,), seed=self.seed_generator)
        shift = min_shift + ops.cast(ops.floor(u * ops.cast(span, "float32")), "int32")
        positions = ops.mod(ops.expand_dims(ops.arange(frames, dtype="int32"), 0) - ops.expand_dims(shift, 1), frames)
        shifted = ops.take_along_axis(visual_windows, ops.expand_dims(positions, -1), axis=1)
        shifted_mask = mask * ops.take_along_axis(mask, positions, axis=1)
        # Long enough for a shift that clears the window: otherwise no shifted negative.
        shifted_mask = shifted_mask * ops.cast(frames > 2 * min_shift, "float32")
        # Another sequence of the batch, the same frames.
        v = keras.random.uniform((), seed=self.seed_generator)
        offset = 1 + ops.cast(ops.floor(v * ops.cast(ops.maximum(batch - 1, 1), "float32")), "int32")
        order = ops.mod(ops.arange(batch, dtype="int32") + offset, batch)
        other = ops.take(visual_windows, order, axis=0)
        other_audio = ops.take(ops.cast(audio, "float32"), order, axis=0)
        different = ops.mean(ops.abs(ops.cast(audio, "float32") - other_audio), axis=-1) > SAME_AUDIO_TOLERANCE
        other_mask = mask * ops.take(mask, order, axis=0) * ops.cast(different, "float32")

        def bce(logits, target):
            # Binary cross-entropy with logits: softplus(-l) for target 1, softplus(l) for 0.
            return ops.softplus(-logits) if target else ops.softplus(logits)

        positive = _masked_mean(bce(logit, 1), mask)
        negative_shift = _masked_mean(bce(self._logits(audio_windows, shifted), 0), shifted_mask)
        negative_other = _masked_mean(bce(self._logits(audio_windows, other), 0), other_mask)
        return positive + 0.5 * (negative_shift + negative_other)

    def compute_mask(self, audio, visual, frame_mask=None, mask=None):
        return None

    def compute_output_shape(self, audio_shape, visual_shape, frame_mask_shape=None):
        return tuple(audio_shape[:-1]) + (1,), tuple(audio_shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "window_radius": self.window_radius,
            "dilation": self.dilation,
            "smoothing_radius": self.smoothing_radius,
            "loss_weight": self.loss_weight,
            "seed": self.seed,
        }


PREFIT_STEPS = 300
PREFIT_WINDOW = 300
PREFIT_BATCH = 16


def prefit_correspondence(layer, audio, visual, *, steps=PREFIT_STEPS, window=PREFIT_WINDOW, seed=0):
    """Fits an `AudioVisualCorrespondence` alone with its self-supervised loss before the main fit.

    A model's fit may be far too short for the scorer (the emotion model converges in a few dozen
    steps on a small corpus); fitted first on the training recordings, the scorer starts the fit
    already telling aligned from misaligned windows, and the fit goes on training it.

    Args:
        layer: a built `AudioVisualCorrespondence` (its weights are overwritten).
        audio, visual: lists of `[N_i, D]` standardised features of the training recordings, zero
            where the modality is absent.
        steps: int. Adam steps (learning rate 3e-3). Defaults to 300.
        window: int. Frames per training window (recordings are cut into windows overlapping by
            half). Defaults to 300.
        seed: int. Seed of the fit (set with `keras.utils.set_random_seed`, so the same data and
            seed give the same weights, also when a fit is resumed). Defaults to 0.

    Returns:
        the mean loss of the last step.
    """
    import numpy as np

    crops = []
    for a, v in zip(audio, visual):
        n = len(a)
        starts = range(0, max(n - window, 0) + 1, max(window // 2, 1))
        for start in starts:
            end = min(start + window, n)
            crops.append((a[start:end], v[start:end]))
    length = max(len(a) for a, _ in crops)
    pad = [(0, length - len(a)) for a, _ in crops]
    xa = np.stack([np.pad(a, ((0, p[1]), (0, 0))) for (a, _), p in zip(crops, pad)]).astype("float32")
    xv = np.stack([np.pad(v, ((0, p[1]), (0, 0))) for (_, v), p in zip(crops, pad)]).astype("float32")
    mask = np.stack([np.pad(np.ones(len(a)), p) for (a, _), p in zip(crops, pad)]).astype("float32")
    mask *= (np.abs(xa).sum(-1) > 0) & (np.abs(xv).sum(-1) > 0)  # frames where both are present
    keras.utils.set_random_seed(seed)  # the scorer's initial weights too
    standalone = AudioVisualCorrespondence.from_config({**layer.get_config(), "seed": seed, "name": "prefit"})
    inputs = [keras.Input((None, xa.shape[-1])), keras.Input((None, xv.shape[-1])), keras.Input((None,))]
    model = keras.Model(inputs, standalone(*inputs)[1])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    batch = min(PREFIT_BATCH, len(xa))
    epochs = max(1, int(np.ceil(steps / np.ceil(len(xa) / batch))))
    history = model.fit([xa, xv, mask], epochs=epochs, batch_size=batch, shuffle=False, verbose=0)
    layer.set_weights(standalone.get_weights())
    return float(history.history["loss"][-1])
