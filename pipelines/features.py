"""Feature, label and output keys: the one place every component takes them from."""

# Batch contract.
AUDIO = "audio"
VISUAL = "visual"
MASK = "mask"
AUDIO_PRESENT = "audio_present"
VISUAL_PRESENT = "visual_present"
MODALITIES = (AUDIO, VISUAL)
FEATURE_KEYS = (AUDIO, VISUAL, MASK)
# Per-frame presence flags (1 = the modality's features are real); every batch carries them,
# all ones unless the corpus marks frames absent or training drops a modality.
PRESENT_KEYS = {AUDIO: AUDIO_PRESENT, VISUAL: VISUAL_PRESENT}
INPUT_KEYS = FEATURE_KEYS + (AUDIO_PRESENT, VISUAL_PRESENT)

# Targets.
VALENCE = "valence"
AROUSAL = "arousal"
LABEL_KEYS = (VALENCE, AROUSAL)

# Partitions, lower case whatever the corpus calls them.
TRAIN = "train"
DEVEL = "devel"
TEST = "test"
PARTITIONS = (TRAIN, DEVEL, TEST)

# Three-way classification bins (paper section 5.1): < -0.05, [-0.05, 0.05], > 0.05.
CLASS_THRESHOLD = 0.05
NUM_CLASSES = 3
CLASS_NAMES = ("negative", "neutral", "positive")

# Model names (the --model flag).
MODEL_NAMES = (
    "audio",
    "visual",
    "feature_fusion",
    "prediction_fusion",
    "context_fusion",
    "cold_fusion",
    "transformer",
)
