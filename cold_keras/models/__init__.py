"""Model builders of COLD fusion and its baselines (`build_model`, `build_raw_model`, `inference_model`).

`builders` holds `build_model`, `inference_model` and `ARCHITECTURES` (one function per model name,
written in `feature_level` and `fusion` over the shared `graph`); `raw` holds `build_raw_model`.
"""

from cold_keras.hyperparameters import DEFAULT_HYPERPARAMETERS
from cold_keras.models.builders import ARCHITECTURES, build_model, inference_model
from cold_keras.models.raw import build_raw_model
from cold_keras.names import MODEL_NAMES, MODELS_WITH_UNIMODAL_BRANCHES

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_HYPERPARAMETERS",
    "MODEL_NAMES",
    "MODELS_WITH_UNIMODAL_BRANCHES",
    "build_model",
    "build_raw_model",
    "inference_model",
]
