"""Keras layers of COLD fusion and its baselines (all registered under the "cold_keras" package)."""

from cold_keras.layers.calibrated_std import CalibratedStd
from cold_keras.layers.cold_loss import ColdLoss
from cold_keras.layers.confidence_weighted_prediction_fusion import (
    ConfidenceWeightedPredictionFusion,
)
from cold_keras.layers.conformal_bounds import ConformalBounds
from cold_keras.layers.correspondence import AudioVisualCorrespondence
from cold_keras.layers.crossmodal_transformer_block import CrossmodalTransformerBlock
from cold_keras.layers.emotion_head import EmotionHead
from cold_keras.layers.emotion_loss import EmotionLoss
from cold_keras.layers.equal_weight_fusion import EqualWeightFusion
from cold_keras.layers.frame_fallback import FrameFallback
from cold_keras.layers.gaussian_context_head import GaussianContextHead
from cold_keras.layers.masked_temporal_pooling import MaskedTemporalPooling
from cold_keras.layers.presence_gate import PresenceGate
from cold_keras.layers.reliability import (
    Atypicality,
    FusionGuard,
    NoveltyScore,
    PredictionAgreement,
    ReliabilityWeighting,
)
from cold_keras.layers.sine_position_encoding import SinePositionEncoding
from cold_keras.layers.temporal_block import TemporalBlock
from cold_keras.layers.variance_norm_fusion import VarianceNormFusion

__all__ = [
    "AudioVisualCorrespondence",
    "CalibratedStd",
    "ColdLoss",
    "ConformalBounds",
    "ConfidenceWeightedPredictionFusion",
    "CrossmodalTransformerBlock",
    "EmotionHead",
    "EmotionLoss",
    "EqualWeightFusion",
    "FrameFallback",
    "GaussianContextHead",
    "MaskedTemporalPooling",
    "PresenceGate",
    "FusionGuard",
    "Atypicality",
    "NoveltyScore",
    "PredictionAgreement",
    "ReliabilityWeighting",
    "SinePositionEncoding",
    "TemporalBlock",
    "VarianceNormFusion",
]
