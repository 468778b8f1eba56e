"""Feature, label and output keys: the one place every component takes them from."""

from cold_keras.names import (  # plain Python: no TensorFlow at argument parsing
    AUDIO,
    AUDIO_PRESENT,
    BRANCH_PREFIXES,  # noqa: F401 (features.BRANCH_PREFIXES)
    DIMENSIONS,
    MASK,
    MODEL_NAMES,  # noqa: F401 (the --model choices: features.MODEL_NAMES)
    NUM_CLASSES,  # noqa: F401 (features.NUM_CLASSES)
    VISUAL,
    VISUAL_PRESENT,
)

# Batch contract (the model-side names are `cold_keras.names`').
MODALITIES = (AUDIO, VISUAL)
FEATURE_KEYS = (AUDIO, VISUAL, MASK)
# Per-frame presence flags (1 = the modality's features are real); every batch carries them,
# all ones unless the corpus marks frames absent or training drops a modality.
PRESENT_KEYS = {AUDIO: AUDIO_PRESENT, VISUAL: VISUAL_PRESENT}
INPUT_KEYS = FEATURE_KEYS + (AUDIO_PRESENT, VISUAL_PRESENT)

# Targets.
VALENCE, AROUSAL = DIMENSIONS
LABEL_KEYS = DIMENSIONS

# Partitions, lower case whatever the corpus calls them.
TRAIN = "train"
DEVEL = "devel"
TEST = "test"
PARTITIONS = (TRAIN, DEVEL, TEST)

# Three-way classification bins (paper section 5.1): < -0.05, [-0.05, 0.05], > 0.05.
CLASS_THRESHOLD = 0.05
CLASS_NAMES = ("negative", "neutral", "positive")
