"""Loss layer of COLD fusion: L_emo plus the calibration/ordinality terms and the latent prior."""

import keras
from keras import ops

from cold_keras import losses as cold_losses
from cold_keras.layers.emotion_loss import DIMENSIONS, EmotionLoss, output_name, stack_rows_of
from cold_keras.layers.reliability import reliability_supervision_loss
from cold_keras.names import WEIGHT_CONVENTIONS


@keras.saving.register_keras_serializable(package="cold_keras")
class ColdLoss(EmotionLoss):
    """Adds the COLD fusion objective (paper Eq. 8) and tracks every term; returns the outputs.

        L = L_emo + lam_CO_V L_CO_V + lam_CO_A L_CO_A + lam_CO_AV L_CO_AV + lam_R L_regu

    * L_emo: as `EmotionLoss`, summed over Y_AV, Y_A, Y_V and both dimensions.
    * Distances d_m (constants): per-frame squared error averaged over valence and arousal
      (regression) or cross-entropy averaged over the two dimensions (classification) of the unimodal
      prediction Y_m (`losses.per_frame_distances`).
    * L_CO_m = `losses.calibration_ordinal_loss(d_m, ||sigma_m||, mask)` averaged over the batch;
      L_CO_AV the same on the frame-axis concatenation of both modalities (2N frames).
    * L_regu = `losses.latent_kl_regulariser` over the frames of both modalities (concatenated).
    * Beyond the paper, `lambda_weight` * L_W with L_W = `losses.fusion_weight_calibration_loss`:
      the fused weights against inverse-error weighting of the two modalities on each frame.

    With presence flags, a modality's absent frames are left out of its calibration terms, of the
    crossmodal term, of L_regu and of L_W (where the weights are fixed at 0 and 1).

    As in `EmotionLoss`, the branches and dimensions are computed on stacked tensors; the three
    calibration terms are one `calibration_ordinal_loss` call on `[3B, 2N]` rows (visual, audio, both
    modalities), the intramodal rows padded with N masked frames, which take no part in a softmax.

    Each term is cast to float32 and tracked by its own `keras.metrics.Mean`: `loss_emo`,
    `loss_co_visual`, `loss_co_audio`, `loss_co_cross`, `loss_regu`, `loss_weight` (unweighted values, so the terms
    stay comparable when the lambdas change).

    Args:
        task, branches, class_weights, sequence_level, num_classes: as `EmotionLoss`; `branches`
            defaults to ("", "audio", "visual") and must include "audio" and "visual".
        lambda_co_visual: float >= 0. Weight of L_CO_V. Defaults to 1e-3.
        lambda_co_audio: float >= 0. Weight of L_CO_A. Defaults to 1e-3.
        lambda_co_cross: float >= 0. Weight of L_CO_AV. Defaults to 1e-3.
        lambda_regu: float >= 0. Weight of L_regu. Defaults to 1e-4.
        weight_convention: str. "informativeness" (s = 1/||sigma||, the paper) or "uncertainty"
            (s = ||sigma||). Must match the fusion layer's convention. Defaults to "informativeness".
        standardize: bool. Per-sequence standardisation of d and s before the softmax.
            Defaults to False.
        temperature: float > 0. Softmax temperature of d and s. Defaults to 1.0.
        lambda_weight: float >= 0. Weight of L_W (0 = the paper's objective). Defaults to 0.
        lambda_reliability: float >= 0. Weight of L_R = `reliability_supervision_loss` of the
            fused visual weight against `inputs["corruption"]` (the frames a training-time
            corruption damaged; tracked as `loss_reliability`). Defaults to 0 (off).
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: dict as `EmotionLoss` ("outputs" must hold "audio_sigma_norm" and "visual_sigma_norm")
            plus "latents": dict with "audio_mu", "audio_sigma", "visual_mu", "visual_sigma"
            `[B, T, K]`.

    Output: `inputs["outputs"]`, unchanged.
    """

    def __init__(
        self,
        task="regression",
        branches=("", "audio", "visual"),
        class_weights=None,
        sequence_level=False,
        num_classes=3,
        lambda_co_visual=1e-3,
        lambda_co_audio=1e-3,
        lambda_co_cross=1e-3,
        lambda_regu=1e-4,
        weight_convention="informativeness",
        standardize=False,
        temperature=1.0,
        lambda_weight=0.0,
        lambda_reliability=0.0,
        **kwargs,
    ):
        super().__init__(
            task=task,
            branches=branches,
            class_weights=class_weights,
            sequence_level=sequence_level,
            num_classes=num_classes,
            **kwargs,
        )
        if "audio" not in self.branches or "visual" not in self.branches:
            raise ValueError(f"ColdLoss needs the unimodal branches 'audio' and 'visual', got {self.branches!r}.")
        lambdas = {
            "lambda_co_visual": lambda_co_visual,
            "lambda_co_audio": lambda_co_audio,
            "lambda_co_cross": lambda_co_cross,
            "lambda_regu": lambda_regu,
            "lambda_weight": lambda_weight,
            "lambda_reliability": lambda_reliability,
        }
        for key, value in lambdas.items():
            if not float(value) >= 0.0:
                raise ValueError(f"{key} must be a non-negative number, got {value!r}.")
        if weight_convention not in WEIGHT_CONVENTIONS:
            raise ValueError(f"weight_convention must be one of {WEIGHT_CONVENTIONS}, got {weight_convention!r}.")
        if not float(temperature) > 0.0:
            raise ValueError(f"temperature must be positive, got {temperature!r}.")
        self.lambda_co_visual = float(lambda_co_visual)
        self.lambda_co_audio = float(lambda_co_audio)
        self.lambda_co_cross = float(lambda_co_cross)
        self.lambda_regu = float(lambda_regu)
        self.lambda_weight = float(lambda_weight)
        self.lambda_reliability = float(lambda_reliability)
        if self.lambda_reliability:
            self.loss_reliability_tracker = keras.metrics.Mean(name="loss_reliability")
        self.weight_convention = weight_convention
        self.standardize = bool(standardize)
        self.temperature = float(temperature)
        self.loss_co_visual_tracker = keras.metrics.Mean(name="loss_co_visual")
        self.loss_co_audio_tracker = keras.metrics.Mean(name="loss_co_audio")
        self.loss_co_cross_tracker = keras.metrics.Mean(name="loss_co_cross")
        self.loss_regu_tracker = keras.metrics.Mean(name="loss_regu")
        self.loss_weight_tracker = keras.metrics.Mean(name="loss_weight")

    def distances(self, targets, outputs, modality):
        """Per-frame distances d_m `[B, T]` of one modality's predictions (no gradient)."""
        return self.modality_distances(targets, outputs)[modality]

    def modality_distances(self, targets, outputs):
        """{"audio": d_A, "visual": d_V}: per-frame distances `[B, T]` (no gradient), computed stacked."""
        modalities = ("audio", "visual")
        rows = [(modality, dimension) for modality in modalities for dimension in DIMENSIONS]
        y_true = stack_rows_of([targets[dimension] for _, dimension in rows])
        y_pred = stack_rows_of([ops.cast(outputs[output_name(m, d)], "float32") for m, d in rows])
        if self.task == "regression":
            y_true = ops.cast(y_true, "float32")
        per_row = cold_losses.per_frame_distances(y_true, y_pred, self.task)  # [4, B, T]
        per_row = ops.reshape(per_row, (len(modalities), len(DIMENSIONS)) + tuple(ops.shape(per_row)[1:]))
        means = ops.mean(per_row, axis=1)
        return {modality: means[i] for i, modality in enumerate(modalities)}

    def calibration_terms(self, d_audio, d_visual, norm_audio, norm_visual, mask_audio, mask_visual):
        """(L_CO_V, L_CO_A, L_CO_AV) from one `calibration_ordinal_loss` call on `[3B, 2T]` rows.

        Rows: visual then N masked padding frames, audio then padding, audio then visual (the
        crossmodal term's frame-axis concatenation). A masked frame is filled with a large negative
        logit before each softmax, so its probability is exactly 0 and the padded rows give the
        intramodal terms' values (up to float32 rounding of the sums).
        """
        zeros = ops.zeros_like(d_audio)
        ones = ops.ones_like(norm_audio)
        distances = ops.concatenate(
            [
                ops.concatenate([d_visual, zeros], axis=1),
                ops.concatenate([d_audio, zeros], axis=1),
                ops.concatenate([d_audio, d_visual], axis=1),
            ],
            axis=0,
        )
        norms = ops.concatenate(
            [
                ops.concatenate([norm_visual, ones], axis=1),
                ops.concatenate([norm_audio, ones], axis=1),
                ops.concatenate([norm_audio, norm_visual], axis=1),
            ],
            axis=0,
        )
        masks = ops.concatenate(
            [
                ops.concatenate([mask_visual, zeros], axis=1),
                ops.concatenate([mask_audio, zeros], axis=1),
                ops.concatenate([mask_audio, mask_visual], axis=1),
            ],
            axis=0,
        )
        per_sequence = cold_losses.calibration_ordinal_loss(
            distances,
            norms,
            masks,
            convention=self.weight_convention,
            standardize=self.standardize,
            temperature=self.temperature,
        )
        terms = ops.mean(ops.reshape(ops.cast(per_sequence, "float32"), (3, -1)), axis=1)
        return terms[0], terms[1], terms[2]

    def cold_terms(self, targets, outputs, latents, mask, presence=None):
        """Unweighted float32 scalars (L_CO_V, L_CO_A, L_CO_AV, L_regu, L_W)."""
        mask = ops.cast(mask, "float32")
        distances = self.modality_distances(targets, outputs)
        d_audio, d_visual = distances["audio"], distances["visual"]
        norm_audio = ops.cast(outputs["audio_sigma_norm"], "float32")
        norm_visual = ops.cast(outputs["visual_sigma_norm"], "float32")
        mask_audio = self.branch_mask("audio", mask, presence)
        mask_visual = self.branch_mask("visual", mask, presence)
        co_visual, co_audio, co_cross = self.calibration_terms(
            d_audio, d_visual, norm_audio, norm_visual, mask_audio, mask_visual
        )
        regu = cold_losses.latent_kl_regulariser(
            ops.concatenate([latents["audio_mu"], latents["visual_mu"]], axis=1),
            ops.concatenate([latents["audio_sigma"], latents["visual_sigma"]], axis=1),
            ops.concatenate([mask_audio, mask_visual], axis=1),
        )
        if "visual_weight" in outputs:
            weight = cold_losses.fusion_weight_calibration_loss(
                d_audio, d_visual, outputs["visual_weight"], mask_audio * mask_visual
            )
        elif self.lambda_weight:
            raise ValueError('lambda_weight > 0 needs the fusion weight "visual_weight" in the outputs.')
        else:
            weight = ops.zeros((), "float32")
        return co_visual, co_audio, co_cross, ops.cast(regu, "float32"), weight

    def call(self, inputs):
        targets, mask, outputs = inputs["targets"], inputs["mask"], inputs["outputs"]
        latents = inputs["latents"]
        mask = ops.cast(mask, "float32")
        presence = inputs.get("presence")
        stacked = self.stack_rows(targets, outputs, mask, presence)
        loss_emo = ops.sum(self.emotion_terms(*stacked))
        co_visual, co_audio, co_cross, regu, weight = self.cold_terms(targets, outputs, latents, mask, presence)
        total = (
            loss_emo
            + self.lambda_co_visual * co_visual
            + self.lambda_co_audio * co_audio
            + self.lambda_co_cross * co_cross
            + self.lambda_regu * regu
        )
        if self.lambda_weight:
            total = total + self.lambda_weight * weight
        corruption = inputs.get("corruption") or {}
        if self.lambda_reliability and corruption.get("audio") is not None and corruption.get("visual") is not None:
            both = self.branch_mask("audio", mask, presence) * self.branch_mask("visual", mask, presence)
            reliability = reliability_supervision_loss(
                outputs["visual_weight"], corruption["audio"], corruption["visual"], both
            )
            total = total + self.lambda_reliability * reliability
            self.loss_reliability_tracker.update_state(reliability)
        self.add_loss(total)
        self.loss_emo_tracker.update_state(loss_emo)
        self.loss_co_visual_tracker.update_state(co_visual)
        self.loss_co_audio_tracker.update_state(co_audio)
        self.loss_co_cross_tracker.update_state(co_cross)
        self.loss_regu_tracker.update_state(regu)
        self.loss_weight_tracker.update_state(weight)
        self.update_emotion_metrics(targets, outputs, mask, presence, stacked)
        return dict(outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "lambda_co_visual": self.lambda_co_visual,
            "lambda_co_audio": self.lambda_co_audio,
            "lambda_co_cross": self.lambda_co_cross,
            "lambda_regu": self.lambda_regu,
            "weight_convention": self.weight_convention,
            "standardize": self.standardize,
            "temperature": self.temperature,
            "lambda_weight": self.lambda_weight,
            "lambda_reliability": self.lambda_reliability,
        }
