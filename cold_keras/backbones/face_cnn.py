"""FaceCNN: a 2D CNN embedding each face crop of a sequence (the role of EmoFAN in the paper)."""

import keras

from cold_keras.backbones.base import Backbone


@keras.saving.register_keras_serializable(package="cold_keras")
class FaceCNN(Backbone):
    """Face-crop CNN giving a 512-d feature per frame (paper section 5.3, EmoFAN's role).

    VGG-style conv blocks (convolution, batch normalisation, ReLU) with global average pooling, two
    ReLU dense layers and a linear
    512-d embedding (see `Backbone`). Inputs are float face crops `[..., H, W, 3]`, already
    normalised (the raw model puts a `Normalization` layer in front); every leading axis is a
    batch axis, so `[B, T, H, W, 3]` gives `[B, T, 512]`.

    Args:
        embedding_dim: int. Feature size per frame. Defaults to 512.
        filters: list of int. Filters per conv block. Defaults to (32, 64, 128, 256).
        convs_per_block: int or list of int. Defaults to 1.
        dense_units: int. Units of the two hidden dense layers. Defaults to 512.
        batch_norm: bool. Batch normalisation after every convolution. Defaults to True (from
            scratch, the face CNN trains far faster with it).
        freeze_trunk: bool. Only the last two dense layers trainable. Defaults to False.
        **kwargs: base layer arguments.

    >>> backbone = FaceCNN(filters=(8, 16), dense_units=32, embedding_dim=16)
    >>> backbone(keras.ops.zeros((2, 5, 32, 32, 3))).shape
    (2, 5, 16)
    """

    FIXED_ARGUMENTS = ("frame_rank", "pooling")

    def __init__(
        self,
        embedding_dim=512,
        filters=(32, 64, 128, 256),
        convs_per_block=1,
        dense_units=512,
        batch_norm=True,
        freeze_trunk=False,
        **kwargs,
    ):
        super().__init__(
            3,
            embedding_dim,
            filters,
            convs_per_block=convs_per_block,
            dense_units=dense_units,
            pooling="average",
            batch_norm=batch_norm,
            freeze_trunk=freeze_trunk,
            **kwargs,
        )
