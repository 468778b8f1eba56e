"""Per-frame CNN backbones of raw mode (registered under the "cold_keras" package)."""

from cold_keras.backbones.base import Backbone, BackboneWeightsError
from cold_keras.backbones.face_cnn import FaceCNN
from cold_keras.backbones.vggish import VGGish

__all__ = ["Backbone", "BackboneWeightsError", "FaceCNN", "VGGish"]
