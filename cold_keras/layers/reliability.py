"""Reliability signals for COLD fusion's weights (all optional; the paper's weighting is the default).

* `reliability_supervision_loss`: the fused visual weight against the frames a training-time
  corruption damaged (loss targets only, never model inputs).
* `novelty_features`: per-modality input-space novelty under the training statistics.
* `agreement_features`: how far the two unimodal predictions are apart.
* `atypicality_signals`, `Atypicality`: a two-sided, kind-agnostic score of how far a frame's
  novelty signals are from the clean training frames' (a frozen stream is as atypical as noise).
* `ReliabilityWeighting`: moves the paper's weight by a small learned function of such features,
  and (with atypicality scores) by a monotone shift away from the more atypical modality.
* `FusionGuard`: per output dimension, the fused prediction or a unimodal branch (set after
  training from the validation partition).
"""

import keras
from keras import ops

from cold_keras.layers.variance_norm_fusion import present_weights

EPSILON = 1e-6
BRANCHES = ("fused", "audio", "visual")


def _masked_mean(x, mask):
    x = ops.cast(x, "float32")
    if mask is None:
        return ops.mean(x)
    mask = ops.cast(mask, "float32")
    return ops.sum(x * mask) / ops.maximum(ops.sum(mask), 1.0)


def reliability_supervision_loss(visual_weight, audio_corrupted, visual_corrupted, mask=None):
    """Binary cross-entropy of w_V against the known corruption of exactly one modality.

    Per frame, with c_A, c_V in {0, 1} the corruption flags of a training-time augmentation:

        t_V = 0 where c_V = 1 and c_A = 0 (trust audio), 1 where c_A = 1 and c_V = 0 (trust visual)
        L_R = mean over those frames of -[t_V log w_V + (1 - t_V) log(1 - w_V)]

    Frames with neither or both modalities corrupted (and frames outside `mask`) are left out.

    Args:
        visual_weight: `[B, T]` fused visual weight in (0, 1).
        audio_corrupted, visual_corrupted: `[B, T]` 0/1 flags.
        mask: optional `[B, T]` valid frames (both modalities present).

    Returns:
        float32 scalar (0 when no frame has exactly one corrupted modality).

    >>> round(float(reliability_supervision_loss([[0.5, 0.9]], [[0.0, 0.0]], [[1.0, 0.0]])), 4)
    0.6931
    """
    c_a = ops.cast(audio_corrupted, "float32")
    c_v = ops.cast(visual_corrupted, "float32")
    one = c_a * (1.0 - c_v) + c_v * (1.0 - c_a)
    if mask is not None:
        one = one * ops.cast(mask, "float32")
    target = c_a * (1.0 - c_v)
    w = ops.clip(ops.cast(visual_weight, "float32"), EPSILON, 1.0 - EPSILON)
    cross_entropy = -(target * ops.log(w) + (1.0 - target) * ops.log(1.0 - w))
    return _masked_mean(cross_entropy, one)


def novelty_features(features, mask):
    """`[B, T, 2]` novelty of standardised features `[B, T, D]` (z-scores under the train statistics).

    Column 0: log(1 + mean_d z^2), the diagonal-Gaussian (Mahalanobis) score of the frame; column
    1: log(0.01 + mean_d (z_t - z_{t-1})^2), how much the frame moved (near its minimum for a
    frozen or constant stream, large for noise).
    """
    z = ops.cast(features, "float32")
    level = ops.log(1.0 + ops.mean(ops.square(z), axis=-1))
    previous = ops.concatenate([z[:, :1], z[:, :-1]], axis=1)
    motion = ops.log(0.01 + ops.mean(ops.square(z - previous), axis=-1))
    out = ops.stack([level, motion], axis=-1)
    return out * ops.expand_dims(ops.cast(mask, "float32"), -1)


def agreement_features(audio_predictions, visual_predictions, mask):
    """`[B, T, P]` log(0.01 + (y_A - y_V)^2) per prediction (no gradient into the branches).

    For class logits `[B, T, C]` the squared distance of the class probabilities is used.
    """
    columns = []
    for y_a, y_v in zip(audio_predictions, visual_predictions):
        y_a, y_v = ops.stop_gradient(ops.cast(y_a, "float32")), ops.stop_gradient(ops.cast(y_v, "float32"))
        if len(y_a.shape) == 3:
            distance = ops.sum(ops.square(ops.softmax(y_a, axis=-1) - ops.softmax(y_v, axis=-1)), axis=-1)
        else:
            distance = ops.square(y_a - y_v)
        columns.append(ops.log(0.01 + distance))
    return ops.stack(columns, axis=-1) * ops.expand_dims(ops.cast(mask, "float32"), -1)


def masked_moving_average(x, mask, radius):
    """`[B, T, F]` moving average of `x` over the real frames of +-`radius` frames (`mask` `[B, T]`)."""
    if radius <= 0:
        return x
    m = ops.expand_dims(ops.cast(mask, "float32"), -1)
    width = 2 * radius + 1
    padded = ops.pad(x * m, [[0, 0], [radius + 1, radius], [0, 0]])
    padded_mask = ops.pad(m, [[0, 0], [radius + 1, radius], [0, 0]])
    total = ops.cumsum(padded, axis=1)
    count = ops.cumsum(padded_mask, axis=1)
    window_total = total[:, width:] - total[:, :-width]
    window_count = count[:, width:] - count[:, :-width]
    return window_total / ops.maximum(window_count, 1.0)


ATYPICALITY_SIGNALS = ("level", "motion", "spread")
DEFAULT_RADIUS = 10
ATYPICALITY_MARGIN = 2.0


def atypicality_signals(features, mask, radius=DEFAULT_RADIUS):
    """`[B, T, 3]` smoothed novelty signals of standardised features `[B, T, D]`.

    Per frame, each averaged over the real frames within +-`radius`:

        level  = log(1 + mean_d z^2)                    (far from the training mean: noise)
        motion = log(0.01 + mean_d (z_t - z_{t-1})^2)   (a frozen or constant stream: very low)
        spread = log(0.01 + mean_d (z_t - zbar_t)^2)    (zbar: the +-radius moving average of z)

    Returns:
        float32 `[B, T, 3]`, zero outside `mask`.
    """
    z = ops.cast(features, "float32")
    m = ops.cast(mask, "float32")
    level = ops.log(1.0 + ops.mean(ops.square(z), axis=-1))
    previous = ops.concatenate([z[:, :1], z[:, :-1]], axis=1)
    motion = ops.log(0.01 + ops.mean(ops.square(z - previous), axis=-1))
    local = masked_moving_average(z, m, radius)
    spread_raw = ops.mean(ops.square(z - local), axis=-1, keepdims=True)
    spread = ops.log(0.01 + masked_moving_average(spread_raw, m, radius))
    raw = ops.stack([level, motion], axis=-1)
    smoothed = ops.concatenate([masked_moving_average(raw, m, radius), spread], axis=-1)
    return smoothed * ops.expand_dims(m, -1)


def atypicality_reference(signals):
    """{"center", "scale"}: per-signal median and interquartile range of `[N, 3]` signals of clean
    (training) frames, the reference of `Atypicality`."""
    import numpy as np

    signals = np.asarray(signals, np.float64).reshape(-1, len(ATYPICALITY_SIGNALS))
    q25, q50, q75 = np.percentile(signals, [25, 50, 75], axis=0)
    return {"center": q50.tolist(), "scale": np.maximum(q75 - q25, 1e-3).tolist()}


@keras.saving.register_keras_serializable(package="cold_keras")
class Atypicality(keras.layers.Layer):
    """How atypical each frame of one modality is, two-sided, under the training frames' reference.

        s_t = max_k |r_kt - center_k| / scale_k,   r = `atypicality_signals` (level, motion, spread)
        a_t = max(0, s_t - margin)

    `center` and `scale` are the median and interquartile range of the signals over the clean
    training frames (`atypicality_reference`), fixed at build time like the normalisation. Being
    two-sided, the score does not learn which way a corruption moves the signals: a stream that
    stops moving (frozen, constant) and one that jumps (noise) are both atypical, so a weighting
    trained on some corruption kinds carries over to others that leave the input range or the
    input's usual dynamics. Frames within `margin` interquartile ranges score 0.

    Args:
        center, scale: 3 floats each (level, motion, spread).
        radius: int. Smoothing radius in frames. Defaults to 10.
        margin: float. Defaults to 2.

    Call arguments:
        features: `[B, T, D]` standardised features of one modality.
        frame_mask: `[B, T]` real frames.

    Output: `[B, T, 1]` atypicality a_t >= 0 (0 outside the mask).
    """

    def __init__(self, center, scale, radius=DEFAULT_RADIUS, margin=ATYPICALITY_MARGIN, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if len(center) != len(ATYPICALITY_SIGNALS) or len(scale) != len(ATYPICALITY_SIGNALS):
            raise ValueError(f"Atypicality needs 3 centers and 3 scales, got {center!r} and {scale!r}.")
        if min(float(v) for v in scale) <= 0:
            raise ValueError(f"Atypicality scales must be > 0, got {scale!r}.")
        self.center = [float(v) for v in center]
        self.scale = [float(v) for v in scale]
        self.radius = int(radius)
        self.margin = float(margin)

    def call(self, features, frame_mask):
        r = atypicality_signals(features, frame_mask, self.radius)
        center = ops.convert_to_tensor(self.center, "float32")
        scale = ops.convert_to_tensor(self.scale, "float32")
        score = ops.max(ops.abs(r - center) / scale, axis=-1, keepdims=True)
        score = ops.maximum(score - self.margin, 0.0)
        return score * ops.expand_dims(ops.cast(frame_mask, "float32"), -1)

    def compute_output_shape(self, features_shape, frame_mask_shape=None):
        return tuple(features_shape[:-1]) + (1,)

    def get_config(self):
        return {
            **super().get_config(),
            "center": self.center,
            "scale": self.scale,
            "radius": self.radius,
            "margin": self.margin,
        }


@keras.saving.register_keras_serializable(package="cold_keras")
class ReliabilityWeighting(keras.layers.Layer):
    """Re-weights the two contexts with a learned correction of the paper's visual weight.

        r_t = masked moving average of the reliability features over +-`radius` frames
        w_V' = sigmoid(logit(w_V) + v^T tanh(W r_t + b) + c + alpha_A a_A,t - alpha_V a_V,t - alpha_C m_t)
        w_A' = 1 - w_V'
        h_AV = w_V' h_V + w_A' h_A   (absent modalities as in `VarianceNormFusion`)

    v and c start at zero, so without atypicality the layer starts from the paper's weights
    exactly. The atypicality terms (only with `atypicality`) are monotone: alpha_m =
    softplus(beta_m) >= 0 (beta_m starts at 0, alpha_m at ln 2), so a more atypical modality
    always loses weight, whatever corruption kind made it atypical; on typical frames (a = 0)
    they vanish. The correspondence term (only with `correspondence`) is monotone the same way:
    alpha_C = softplus(beta_C) >= 0 (starting at ln 2) times the audio-visual mismatch m_t >= 0 of
    `AudioVisualCorrespondence`, so a visual stream that does not belong with the audio loses weight.

    Args:
        units: int. Hidden units of the correction. Defaults to 8.
        radius: int >= 0. Smoothing radius in frames. Defaults to 10.

    Call arguments:
        inputs: list `[h_audio, h_visual, visual_weight, reliability_features]` with
            `[B, T, K]`, `[B, T, K]`, `[B, T]`, `[B, T, F]`, or the first three only (no learned
            correction: the atypicality terms alone).
        frame_mask: `[B, T]` real frames.
        presence: optional `[audio_present, visual_present]`.
        atypicality: optional `[B, T, 2]` (audio, visual) scores of `Atypicality`.
        correspondence: optional `[B, T, 1]` mismatch of `AudioVisualCorrespondence`.

    Output: `(h_av, audio_weight, visual_weight)`.
    """

    def __init__(self, units=8, radius=10, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.units = int(units)
        self.radius = int(radius)
        self.hidden = keras.layers.Dense(self.units, activation="tanh", name="hidden")
        self.correction = keras.layers.Dense(1, kernel_initializer="zeros", name="correction")

    def build(
        self,
        inputs_shape,
        frame_mask_shape=None,
        presence_shape=None,
        atypicality_shape=None,
        correspondence_shape=None,
    ):
        if len(inputs_shape) == 4:
            features_shape = tuple(inputs_shape[3])
            self.hidden.build(features_shape)
            self.correction.build(features_shape[:-1] + (self.units,))
        if atypicality_shape is not None:
            # alpha = softplus(beta) of (audio, visual).
            self.atypicality_beta = self.add_weight(name="atypicality_beta", shape=(2,), initializer="zeros")
        if correspondence_shape is not None:
            self.correspondence_beta = self.add_weight(name="correspondence_beta", shape=(), initializer="zeros")
        self.built = True

    def call(self, inputs, frame_mask=None, presence=None, atypicality=None, correspondence=None):
        h_audio, h_visual, visual_weight = inputs[:3]
        mask = frame_mask
        if mask is None:
            mask = ops.ones(ops.shape(visual_weight), "float32")
        w = ops.clip(ops.cast(visual_weight, "float32"), EPSILON, 1.0 - EPSILON)
        logit = ops.log(w) - ops.log(1.0 - w)
        if len(inputs) == 4:
            r = masked_moving_average(ops.cast(inputs[3], "float32"), mask, self.radius)
            logit = logit + ops.squeeze(self.correction(self.hidden(r)), -1)
        if atypicality is not None:
            alpha = ops.softplus(self.atypicality_beta)
            a = ops.cast(atypicality, "float32")
            logit = logit + alpha[0] * a[..., 0] - alpha[1] * a[..., 1]
        if correspondence is not None:
            logit = logit - ops.softplus(self.correspondence_beta) * ops.cast(correspondence, "float32")[..., 0]
        visual_weight = ops.sigmoid(logit)
        audio_weight = 1.0 - visual_weight
        if presence is not None:
            audio_weight, visual_weight = present_weights(audio_weight, visual_weight, *presence)
        fused = ops.expand_dims(visual_weight, -1) * h_visual + ops.expand_dims(audio_weight, -1) * h_audio
        return fused, audio_weight, visual_weight

    def compute_mask(self, inputs, frame_mask=None, presence=None, atypicality=None, correspondence=None, mask=None):
        return None

    def compute_output_shape(
        self,
        inputs_shape,
        frame_mask_shape=None,
        presence_shape=None,
        atypicality_shape=None,
        correspondence_shape=None,
    ):
        h_shape = tuple(inputs_shape[0])
        return h_shape, h_shape[:-1], h_shape[:-1]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "radius": self.radius}


@keras.saving.register_keras_serializable(package="cold_keras")
class FusionGuard(keras.layers.Layer):
    """Per output dimension, passes on the fused prediction or one unimodal branch.

    The choice is a non-trainable one-hot variable `[num_dimensions, 3]` over (fused, audio,
    visual), saved with the model; it starts at "fused" for every dimension (the layer is then
    the identity on the fused output) and is set after training with `choose`, from the
    validation partition (`pipelines.evaluation.fusion_guard.apply_fusion_guard`).

    Call arguments:
        inputs: list of `num_dimensions` triples `[fused, audio, visual]` of same-shaped tensors.

    Output: list of `num_dimensions` tensors.
    """

    def __init__(self, num_dimensions=2, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_dimensions = int(num_dimensions)

    def build(self, input_shape):
        initial = [[1.0, 0.0, 0.0]] * self.num_dimensions
        self.choice = self.add_weight(
            name="choice",
            shape=(self.num_dimensions, 3),
            initializer=keras.initializers.Constant(initial),
            trainable=False,
        )
        self.built = True

    def choose(self, branches):
        """Sets the branch of every dimension: a list of "fused" / "audio" / "visual"."""
        if len(branches) != self.num_dimensions or any(b not in BRANCHES for b in branches):
            raise ValueError(f"choose needs {self.num_dimensions} of {BRANCHES}, got {branches!r}.")
        self.choice.assign([[1.0 if b == name else 0.0 for name in BRANCHES] for b in branches])

    def chosen(self):
        """The branch of every dimension."""
        values = ops.convert_to_numpy(self.choice)
        return [BRANCHES[int(row.argmax())] for row in values]

    def call(self, inputs):
        out = []
        for d, triple in enumerate(inputs):
            weights = self.choice[d]
            out.append(sum(weights[k] * ops.cast(triple[k], "float32") for k in range(3)))
        return out

    def compute_output_shape(self, input_shape):
        return [tuple(triple[0]) for triple in input_shape]

    def get_config(self):
        return {**super().get_config(), "num_dimensions": self.num_dimensions}


@keras.saving.register_keras_serializable(package="cold_keras")
class NoveltyScore(keras.layers.Layer):
    """`novelty_features` as a layer: `[B, T, D]` standardised features and `[B, T]` frame mask -> `[B, T, 2]`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, features, frame_mask):
        return novelty_features(features, frame_mask)


@keras.saving.register_keras_serializable(package="cold_keras")
class PredictionAgreement(keras.layers.Layer):
    """`agreement_features` as a layer: lists of audio and visual predictions and a frame mask -> `[B, T, P]`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, audio_predictions, visual_predictions, frame_mask):
        return agreement_features(audio_predictions, visual_predictions, frame_mask)
