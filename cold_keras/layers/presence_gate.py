"""Per-frame presence of a modality: absent frames are zero-filled before any model sees them."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cold_keras")
class PresenceGate(keras.layers.Layer):
    """Zero-fills a modality's features on the frames where it is absent.

        p_i = 1[presence_i > 0.5],   x'_i = p_i x_i

    With `presence=None` (the flag left out of the batch) every frame is present. The gated
    features of an absent frame are exactly zero whatever the input held there, so they cannot
    influence anything downstream; the fusion layers also take `p` to give that modality a weight
    of exactly 0 on those frames. Computes in float32 by default.

    Args:
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        features: `[B, T, D]` features of one modality.
        presence: optional `[B, T]` flags, 1 = the modality's features are real.

    Output: tuple `(gated_features [B, T, D], presence [B, T])`, the presence as float32 0/1.

    >>> gated, present = PresenceGate()(keras.ops.ones((1, 3, 2)), keras.ops.convert_to_tensor([[1.0, 0.0, 1.0]]))
    >>> [float(x) for x in gated[0, :, 0]]
    [1.0, 0.0, 1.0]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, features, presence=None):
        if presence is None:
            flags = ops.ones_like(features[..., 0])
        else:
            flags = ops.cast(ops.cast(presence, "float32") > 0.5, features.dtype)
        return features * ops.expand_dims(flags, -1), ops.cast(flags, "float32")

    def compute_mask(self, features, presence=None, mask=None):
        return None

    def compute_output_shape(self, features_shape, presence_shape=None):
        features_shape = tuple(features_shape)
        return features_shape, features_shape[:-1]
