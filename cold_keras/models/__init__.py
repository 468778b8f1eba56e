"""Model builders of COLD fusion and its baselines (`build_model`, `build_raw_model`, `inference_model`)."""

from cold_keras.models.builders import (
    DEFAULT_HYPERPARAMETERS,
    MODEL_NAMES,
    MODELS_WITH_UNIMODAL_BRANCHES,
    build_model,
    build_raw_model,
    inference_model,
)

__all__ = [
    "DEFAULT_HYPERPARAMETERS",
    "MODEL_NAMES",
    "MODELS_WITH_UNIMODAL_BRANCHES",
    "build_model",
    "build_raw_model",
    "inference_model",
]
