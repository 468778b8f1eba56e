"""Losses of COLD fusion: concordance, class-weighted cross-entropy, calibration and latent prior terms.

Every function casts its inputs to float32 before computing, so the losses stay finite and accurate under
`mixed_float16` / `mixed_bfloat16` policies, and returns float32 tensors. Masks are `[B, T]` (or the shape of
the per-frame values) with 1 for a real frame and 0 for padding; a mask may also hold non-negative frame
weights. `None` means every frame is valid. The values of padded frames never reach the result (a NaN
there is ignored), though for gradients they should be finite (e.g. a positive sigma).

The paper's objective (Eq. 8) is

    L = L_emo + lam_CO_V * L_CO_V + lam_CO_A * L_CO_A + lam_CO_AV * L_CO_AV + lam_R * L_regu

with `L_emo` built from `emotion_regression_loss` or `weighted_cross_entropy` per output and dimension,
the three calibration terms from `calibration_ordinal_loss` on `per_frame_distances`, and `L_regu` from
`latent_kl_regulariser`.
"""

import keras
from keras import ops

from cold_keras.names import TASKS, WEIGHT_CONVENTIONS

# Keras' own fuzz factor; keeps 0 / 0 (a constant sequence) finite in the concordance loss.
EPSILON = 1e-7

# Fill value for padded logits before a softmax. Everything here runs in float32, where -1e9 is finite
# (in float16 it would be -inf and an all-padded row would turn into NaN).
_MASK_FILL = -1e9


def _float32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def _mask_like(x, mask):
    """float32 mask broadcast to the shape of `x` (all ones when `mask` is None)."""
    if mask is None:
        return ops.ones_like(x)
    return ops.broadcast_to(_float32(mask), ops.shape(x))


def masked_mean(x, mask=None):
    """Mean of `x` over the entries where `mask` is non-zero, weighted by `mask`.

    mean = sum_i m_i x_i / sum_i m_i, and 0 when the mask sums to 0 (no valid entry), so an all-padded
    batch contributes nothing instead of NaN.

    Args:
        x: tensor. Values, cast to float32.
        mask: tensor broadcastable to `x`, or None. 1 = valid (non-negative weights are allowed).
            Defaults to None (plain mean).

    Returns:
        float32 scalar.

    >>> float(masked_mean([1.0, 2.0, 9.0], [1.0, 1.0, 0.0]))
    1.5
    """
    x = _float32(x)
    m = _mask_like(x, mask)
    # Padded entries may hold anything (NaN included), and 0 * NaN is NaN.
    x = ops.where(m > 0, x, 0.0)
    return ops.divide_no_nan(ops.sum(x * m), ops.sum(m))


def concordance_cc(y_true, y_pred, mask=None):
    """Concordance correlation coefficient over all valid elements (differentiable, for training).

    The batch is flattened first, so the frames of all sequences are pooled as one long sequence
    (AVEC's way of scoring a partition), and

        CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2 + eps)

    with the population (ddof=0) moments over the valid frames,
    s_xy = sum_i m_i (x_i - mean_x)(y_i - mean_y) / sum_i m_i, and eps = 1e-7 so that a constant
    sequence gives a finite value (0) instead of 0 / 0. The ddof only changes the result by a factor of
    order 1/n in the mean-difference term, which does not matter for a loss; the reported metric
    (`cold_keras.metrics.ccc`) uses ddof=1.

    Args:
        y_true: tensor `[B, T]` (any shape). Targets.
        y_pred: tensor of the same shape. Predictions.
        mask: tensor of the same shape or None. 1 = valid frame. Defaults to None.

    Returns:
        float32 scalar in [-1, 1].

    >>> round(float(concordance_cc([[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]])), 5)
    1.0
    """
    x = ops.reshape(_float32(y_true), (-1,))
    y = ops.reshape(_float32(y_pred), (-1,))
    m = ops.reshape(_mask_like(_float32(y_true), mask), (-1,))
    x = ops.where(m > 0, x, 0.0)
    y = ops.where(m > 0, y, 0.0)
    n = ops.sum(m)
    mean_x = ops.divide_no_nan(ops.sum(m * x), n)
    mean_y = ops.divide_no_nan(ops.sum(m * y), n)
    dx = x - mean_x
    dy = y - mean_y
    var_x = ops.divide_no_nan(ops.sum(m * dx * dx), n)
    var_y = ops.divide_no_nan(ops.sum(m * dy * dy), n)
    cov = ops.divide_no_nan(ops.sum(m * dx * dy), n)
    return 2.0 * cov / (var_x + var_y + ops.square(mean_x - mean_y) + EPSILON)


@keras.saving.register_keras_serializable(package="cold_keras")
class ConcordanceLoss(keras.losses.Loss):
    """1 - CCC over all valid frames of the batch (see `concordance_cc`).

    CCC is a statistic of the whole batch, not a mean of per-sample values, so the loss is a scalar
    and `sample_weight` is read as the frame mask (1 = valid frame), not as a per-sample weight.

    Args:
        name: str. Defaults to "concordance_loss".
        reduction: accepted for API compatibility; the result is already a scalar.
        dtype: dtype of the returned loss. Defaults to None (the Keras float type).

    Call arguments:
        y_true: `[B, T]` targets.
        y_pred: `[B, T]` predictions.
        sample_weight: `[B, T]` frame mask or None.

    >>> loss = ConcordanceLoss()
    >>> round(float(loss([[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]])), 5)
    0.0
    """

    def __init__(self, name="concordance_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return 1.0 - concordance_cc(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        loss = 1.0 - concordance_cc(y_true, y_pred, mask=sample_weight)
        return ops.cast(loss, self.dtype)


def emotion_regression_loss(y_true, y_pred, mask=None):
    """Regression emotion loss for one dimension: (1 - CCC) + MSE over the valid frames.

        L = 1 - CCC(y, y_hat) + sum_i m_i (y_i - y_hat_i)^2 / sum_i m_i

    The caller sums it over the dimensions (valence, arousal) and the outputs (Y_A, Y_V, Y_AV).

    Args:
        y_true: tensor `[B, T]`. Targets in [-1, 1].
        y_pred: tensor `[B, T]`. Predictions.
        mask: tensor `[B, T]` or None. 1 = valid frame. Defaults to None.

    Returns:
        float32 scalar.
    """
    y_true = _float32(y_true)
    y_pred = _float32(y_pred)
    ccc_term = 1.0 - concordance_cc(y_true, y_pred, mask)
    return ccc_term + masked_mean(ops.square(y_true - y_pred), mask)


# ----------------------------------------------------------------------------------------------------
# Stacked forms: G independent series on the first axis, one value per series in one computation
# ----------------------------------------------------------------------------------------------------


def _rows(x):
    """`x` `[G, ...]` as `[G, N]` (one row per series)."""
    return ops.reshape(x, (ops.shape(x)[0], -1))


def stacked_concordance_cc(y_true, y_pred, mask=None):
    """`concordance_cc` of G series at once: row g of the result is `concordance_cc(y_true[g], y_pred[g], mask[g])`.

    The same expressions as `concordance_cc` (population moments over each series' valid elements,
    eps = 1e-7), reduced along each row instead of over the whole tensor, so a loss layer scores
    every prediction branch and dimension in one graph instead of one graph per series.

    Args:
        y_true: tensor `[G, ...]`. Targets, G series stacked on the first axis.
        y_pred: tensor of the same shape. Predictions.
        mask: tensor of the same shape or None. 1 = valid element. Defaults to None.

    Returns:
        float32 tensor `[G]`.

    >>> [round(float(v), 5) for v in stacked_concordance_cc([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]],
    ...                                                      [[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])]
    [1.0, -1.0]
    """
    x = _rows(_float32(y_true))
    y = _rows(_float32(y_pred))
    m = _rows(_mask_like(_float32(y_true), mask))
    x = ops.where(m > 0, x, 0.0)
    y = ops.where(m > 0, y, 0.0)
    n = ops.sum(m, axis=1)
    mean_x = ops.divide_no_nan(ops.sum(m * x, axis=1), n)
    mean_y = ops.divide_no_nan(ops.sum(m * y, axis=1), n)
    dx = x - mean_x[:, None]
    dy = y - mean_y[:, None]
    var_x = ops.divide_no_nan(ops.sum(m * dx * dx, axis=1), n)
    var_y = ops.divide_no_nan(ops.sum(m * dy * dy, axis=1), n)
    cov = ops.divide_no_nan(ops.sum(m * dx * dy, axis=1), n)
    return 2.0 * cov / (var_x + var_y + ops.square(mean_x - mean_y) + EPSILON)


def stacked_masked_mean(x, mask=None):
    """`masked_mean` of each row of `x` `[G, ...]`: float32 `[G]` (0 for a row without a valid entry)."""
    x = _float32(x)
    m = _rows(_mask_like(x, mask))
    x = ops.where(m > 0, _rows(x), 0.0)
    return ops.divide_no_nan(ops.sum(x * m, axis=1), ops.sum(m, axis=1))


def stacked_emotion_regression_loss(y_true, y_pred, mask=None):
    """`emotion_regression_loss` of G series at once: (1 - CCC) + MSE over each series' valid frames.

    Args:
        y_true: tensor `[G, B, T]`. Targets, e.g. one row per prediction branch and dimension.
        y_pred: tensor `[G, B, T]`. Predictions.
        mask: tensor `[G, B, T]` or None. 1 = valid frame (each row may have its own mask).

    Returns:
        float32 tensor `[G]`; row g equals `emotion_regression_loss(y_true[g], y_pred[g], mask[g])`.
    """
    y_true = _float32(y_true)
    y_pred = _float32(y_pred)
    ccc_term = 1.0 - stacked_concordance_cc(y_true, y_pred, mask)
    return ccc_term + stacked_masked_mean(ops.square(y_true - y_pred), mask)


def stacked_weighted_cross_entropy(labels, logits, class_weights=None, mask=None):
    """`weighted_cross_entropy` of G series at once, each with its own class weights.

    Args:
        labels: int tensor `[G, B, T]`. Class ids in [0, C); padded frames may hold any value.
        logits: tensor `[G, B, T, C]`.
        class_weights: `[G, C]` floats (one row of class weights per series) or None (all ones).
        mask: tensor `[G, B, T]` or None. 1 = valid frame.

    Returns:
        float32 tensor `[G]`; row g equals `weighted_cross_entropy(labels[g], logits[g], class_weights[g], mask[g])`.
    """
    logits = _float32(logits)
    num_classes = ops.shape(logits)[-1]
    labels = ops.clip(ops.cast(labels, "int32"), 0, num_classes - 1)
    ce = _frame_cross_entropy(labels, logits)
    m = _mask_like(ce, mask)
    ce = ops.where(m > 0, ce, 0.0)
    if class_weights is not None:
        class_weights = _float32(class_weights)
        rows, static_classes = ops.shape(labels)[0], logits.shape[-1]
        if len(class_weights.shape) != 2 or (static_classes is not None and class_weights.shape[1] != static_classes):
            raise ValueError(
                f"class_weights must hold one row of one weight per class ({static_classes}) per series, "
                f"got shape {tuple(class_weights.shape)}."
            )
        # Row g's labels index row g of the weights in the flattened [G * C] table.
        offsets = ops.reshape(ops.arange(rows, dtype="int32") * num_classes, (-1,) + (1,) * (len(labels.shape) - 1))
        m = m * ops.take(ops.reshape(class_weights, (-1,)), labels + offsets)
    return ops.divide_no_nan(ops.sum(_rows(m * ce), axis=1), ops.sum(_rows(m), axis=1))


def _frame_cross_entropy(labels, logits):
    """Per-frame sparse cross-entropy from logits (float32); labels outside [0, C) are clipped."""
    logits = _float32(logits)
    num_classes = ops.shape(logits)[-1]
    # Padded frames may carry any label (e.g. -1); clip so the lookup is valid, the mask removes them.
    labels = ops.clip(ops.cast(labels, "int32"), 0, num_classes - 1)
    return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def weighted_cross_entropy(labels, logits, class_weights=None, mask=None):
    """Class-weighted cross-entropy from logits, normalised by the summed weights of the valid frames.

        L = sum_i m_i w_{c_i} CE_i / sum_i m_i w_{c_i},   CE_i = -log softmax(z_i)[c_i]

    The same normalisation as a weighted `torch.nn.CrossEntropyLoss(reduction="mean")`: with all class
    weights equal it is the plain masked mean of the cross-entropy, and the weights only change how
    frames of different classes are balanced, not the overall scale. Returns 0 when no frame is valid.

    Args:
        labels: int tensor `[B, T]`. Class ids in [0, C); padded frames may hold any value.
        logits: tensor `[B, T, C]`.
        class_weights: sequence of C floats or None (all ones). Typically the inverse relative class
            sizes of the training split. Defaults to None.
        mask: tensor `[B, T]` or None. 1 = valid frame. Defaults to None.

    Returns:
        float32 scalar.
    """
    logits = _float32(logits)
    num_classes = ops.shape(logits)[-1]
    labels = ops.clip(ops.cast(labels, "int32"), 0, num_classes - 1)
    ce = _frame_cross_entropy(labels, logits)
    m = _mask_like(ce, mask)
    ce = ops.where(m > 0, ce, 0.0)
    if class_weights is not None:
        class_weights = _float32(class_weights)
        static_classes = logits.shape[-1]
        if len(class_weights.shape) != 1 or (static_classes is not None and class_weights.shape[0] != static_classes):
            raise ValueError(
                f"class_weights must hold one weight per class ({static_classes}), "
                f"got shape {tuple(class_weights.shape)}."
            )
        w = ops.take(class_weights, labels)
        m = m * w
    return ops.divide_no_nan(ops.sum(m * ce), ops.sum(m))


def per_frame_distances(y_true, y_pred, task):
    """Per-frame distance d_i between a unimodal prediction and the target, as a constant target.

    Regression: d_i = (y_i - y_hat_i)^2 for one dimension (the caller averages valence and arousal).
    Classification: d_i = -log softmax(z_i)[c_i] (per-frame cross-entropy from logits).
    The result is wrapped in `stop_gradient`: the calibration terms shape sigma, not the predictions.

    Args:
        y_true: `[B, T]` targets (float for regression, int class ids for classification).
        y_pred: `[B, T]` predictions (regression) or `[B, T, C]` logits (classification).
        task: str. "regression" or "classification".

    Returns:
        float32 tensor `[B, T]`.
    """
    if task == "regression":
        d = ops.square(_float32(y_true) - _float32(y_pred))
    elif task == "classification":
        d = _frame_cross_entropy(y_true, y_pred)
    else:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    return ops.stop_gradient(d)


def _masked_standardize(x, m):
    """(x - mean) / sqrt(var + eps) per row, with masked mean and population variance."""
    n = ops.sum(m, axis=-1, keepdims=True)
    mean = ops.divide_no_nan(ops.sum(m * x, axis=-1, keepdims=True), n)
    var = ops.divide_no_nan(ops.sum(m * ops.square(x - mean), axis=-1, keepdims=True), n)
    return (x - mean) / ops.sqrt(var + 1e-6)


def _masked_log_softmax(x, valid):
    return ops.log_softmax(ops.where(valid, x, _MASK_FILL), axis=-1)


def calibration_ordinal_loss(
    distances,
    sigma_norms,
    mask=None,
    *,
    convention="informativeness",
    standardize=False,
    temperature=1.0,
):
    """Calibration-and-ordinality term L_CO of COLD fusion, one value per sequence.

    Per sequence, over its valid frames i:

        P_D = softmax_i(stop_gradient(d_i) / tau),  P_S = softmax_i(s_i / tau)
        L_CO = KL(P_D || P_S) + KL(P_S || P_D) = sum_i (P_D,i - P_S,i)(log P_D,i - log P_S,i)

    with s_i = 1 / ||sigma_i||_2 for `convention="informativeness"` (the paper: a frame with a large
    error should get a small sigma norm) and s_i = ||sigma_i||_2 for `convention="uncertainty"` (a
    frame with a large error should get a large sigma). With `standardize=True`, d and s are first
    standardised per sequence, (x - mean) / std over the valid frames, so the term does not depend on
    the error magnitude or the latent size. Log-probabilities come from `log_softmax` with padded frames
    filled with a large negative value, in float32 whatever the input dtype. A sequence with no valid
    frame gives 0.

    Intramodal terms (L_CO_A, L_CO_V) use one modality's `[B, N]` values. The crossmodal term L_CO_AV
    is this same function on the frame-axis concatenation of both modalities,
    `concatenate([d_A, d_V], axis=1)`, `concatenate([norm_A, norm_V], axis=1)` and
    `concatenate([mask, mask], axis=1)`, so the softmax runs over 2N frames and ranks the frames of both
    modalities against each other.

    Args:
        distances: tensor `[B, N]`. Per-frame distances d (e.g. from `per_frame_distances`); no gradient
            flows into them.
        sigma_norms: tensor `[B, N]`. ||sigma_i||_2 per frame, positive.
        mask: tensor `[B, N]` or None. 1 = valid frame. Defaults to None.
        convention: str. "informativeness" (s = 1/||sigma||) or "uncertainty" (s = ||sigma||).
            Defaults to "informativeness".
        standardize: bool. Per-sequence standardisation of d and s before the softmax.
            Defaults to False.
        temperature: float > 0. Divides d and s before the softmax. Defaults to 1.0.

    Returns:
        float32 tensor `[B]`, non-negative.

    >>> d = [[0.1, 0.5, 0.2]]
    >>> float(calibration_ordinal_loss(d, [[1.0, 1.0, 1.0]])[0]) > 0.0
    True
    """
    if convention not in WEIGHT_CONVENTIONS:
        raise ValueError(f"convention must be one of {WEIGHT_CONVENTIONS}, got {convention!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    d = ops.stop_gradient(_float32(distances))
    norms = _float32(sigma_norms)
    m = _mask_like(d, mask)
    valid = m > 0
    if convention == "informativeness":
        s = 1.0 / ops.maximum(norms, EPSILON)
    else:
        s = norms
    # Padded frames may hold anything (NaN included); keep them out of the standardisation sums.
    d = ops.where(valid, d, 0.0)
    s = ops.where(valid, s, 0.0)
    if standardize:
        d = _masked_standardize(d, m)
        s = _masked_standardize(s, m)
    if temperature != 1.0:
        d = d / temperature
        s = s / temperature
    log_pd = _masked_log_softmax(d, valid)
    log_ps = _masked_log_softmax(s, valid)
    diff = ops.where(valid, ops.exp(log_pd) - ops.exp(log_ps), 0.0)
    log_diff = ops.where(valid, log_pd - log_ps, 0.0)
    return ops.sum(diff * log_diff, axis=-1)


def latent_kl_regulariser(mu, sigma, mask=None):
    """KL divergence of the latent Gaussian to the standard normal prior, averaged over valid frames.

        KL(N(mu, diag sigma^2) || N(0, I)) = -1/2 sum_k (1 + log sigma_k^2 - mu_k^2 - sigma_k^2)

    summed over the K latent dimensions per frame, then the masked mean over frames (`masked_mean`).
    For both modalities, call it once per modality and average, or concatenate along the frame axis.

    Args:
        mu: tensor `[B, T, K]`. Latent means.
        sigma: tensor `[B, T, K]`. Latent scales, positive.
        mask: tensor `[B, T]` or None. 1 = valid frame. Defaults to None.

    Returns:
        float32 scalar.
    """
    mu = _float32(mu)
    sigma = _float32(sigma)
    log_var = 2.0 * ops.log(sigma)
    kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mu) - ops.square(sigma), axis=-1)
    return masked_mean(kl, mask)


def fusion_weight_calibration_loss(audio_distances, visual_distances, visual_weight, mask=None):
    """Cross-entropy of the fused visual weight against inverse-error weighting, averaged over frames.

    Per frame, with the unimodal distances d_A, d_V treated as constants:

        t_V = d_A / (d_A + d_V)      (inverse-error weights: w_m proportional to 1 / d_m)
        L_W = mean_i -[t_V,i log w_V,i + (1 - t_V,i) log(1 - w_V,i)]

    so the frame-wise weights (`VarianceNormFusion`'s w_V = 1 - w_A) are pulled towards the modality
    that errs less on that very frame. This is a term beyond the paper: its ordinal terms rank the
    frames of a sequence but never tell the weights which modality to trust on a frame. Frames with
    either modality absent should be masked out (their weights are fixed at 0 and 1).

    Args:
        audio_distances: tensor `[B, T]`. Per-frame distances of the audio predictions (no gradient).
        visual_distances: tensor `[B, T]`. Same for the visual predictions.
        visual_weight: tensor `[B, T]`. Fusion weight of the visual modality, in (0, 1).
        mask: tensor `[B, T]` or None. 1 = valid frame. Defaults to None.

    Returns:
        float32 scalar (0 when no frame is valid).

    >>> round(float(fusion_weight_calibration_loss([[1.0]], [[1.0]], [[0.5]])), 4)
    0.6931
    """
    d_a = ops.stop_gradient(_float32(audio_distances))
    d_v = ops.stop_gradient(_float32(visual_distances))
    target = (d_a + 0.5 * EPSILON) / (d_a + d_v + EPSILON)
    w = ops.clip(_float32(visual_weight), EPSILON, 1.0 - EPSILON)
    cross_entropy = -(target * ops.log(w) + (1.0 - target) * ops.log(1.0 - w))
    return masked_mean(cross_entropy, mask)
