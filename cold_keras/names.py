"""Names shared by the library and the pipelines: batch keys, tasks, models, weight conventions.

The one home of each of these constants: `cold_keras`'s layers and builders and the `pipelines`
components import them from here. Plain Python, so the command-line parsers can import it
without loading TensorFlow.
"""

# Batch contract: features, padding mask and the optional per-frame presence flags.
AUDIO = "audio"
VISUAL = "visual"
MASK = "mask"
AUDIO_PRESENT = "audio_present"
VISUAL_PRESENT = "visual_present"

# Emotion dimensions: the targets' names and the order of every per-dimension output.
DIMENSIONS = ("valence", "arousal")
# Output-name prefix of each branch: the fused output `valence`, the unimodal `audio_valence`, ...
BRANCH_PREFIXES = {"av": "", "audio": "audio_", "visual": "visual_"}

# Tasks: per-frame CCC regression in [-1, 1], or 3-way classification of the same labels.
TASKS = ("regression", "classification")
NUM_CLASSES = 3

# Fusion-weight conventions of COLD fusion: weights from 1/||sigma|| or from ||sigma||.
WEIGHT_CONVENTIONS = ("informativeness", "uncertainty")

# Model names (`build_model`'s first argument, the --model flag).
MODEL_NAMES = (
    "audio",
    "visual",
    "feature_fusion",
    "prediction_fusion",
    "context_fusion",
    "cold_fusion",
    "transformer",
)
# Models that also predict from each modality alone (outputs "audio_valence", ..., metrics "audio_*").
MODELS_WITH_UNIMODAL_BRANCHES = ("prediction_fusion", "context_fusion", "cold_fusion")
