"""The model hyperparameters `build_model` / `build_raw_model` take, with their defaults (the paper's).

The one home of these defaults: the builders use them, and `pipelines.settings` derives the typed
`model:` section of a run's configuration from them. Plain Python, so the command-line parsers can
import it without loading TensorFlow.
"""

# Sizes of section 5.4 (BiGRU units per direction, latent size), the loss weights lambda_CO
# and lambda_REGU, and the options beyond the paper (all off by default).
DEFAULT_HYPERPARAMETERS = {
    "gru_units": 256,
    "gru_layers": 2,
    "dropout": 0.5,
    "latent_dim": 128,
    "lambda_co_visual": 1e-3,
    "lambda_co_audio": 1e-3,
    "lambda_co_cross": 1e-3,
    "lambda_regu": 1e-4,
    "weight_convention": "informativeness",
    "calibration_standardize": False,
    "calibration_temperature": 1.0,
    "lambda_weight": 0.0,
    "lambda_reliability": 0.0,
    "reliability_novelty": False,
    "reliability_agreement": False,
    "reliability_atypicality": False,
    "reliability_correspondence": False,
    "lambda_correspondence": 1.0,
    "fusion_guard": False,
    "fallback_threshold": 0.0,
    "num_heads": 16,
    "num_transformer_layers": 3,
    "transformer_dim": 128,
    "transformer_dropout": 0.1,
    "class_weights": None,
    "audio_norm": None,
    "visual_norm": None,
    "audio_atypicality": None,
    "visual_atypicality": None,
    "seed": None,
}
