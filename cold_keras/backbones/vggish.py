"""VGGish: a VGG-style CNN embedding each log-mel patch of a sequence (128-d per frame)."""

import keras

from cold_keras.backbones.base import Backbone


@keras.saving.register_keras_serializable(package="cold_keras")
class VGGish(Backbone):
    """VGGish-style log-mel CNN giving a 128-d feature per frame (paper section 5.3).

    VGGish (Hershey et al. 2017) embeds a 0.96 s log-mel patch of 96 frames x 64 mel bins with
    conv blocks of 64, 128, 256 (x2) and 512 (x2) filters, a flattened map, two 4096-unit dense
    layers and a 128-d embedding. Here the patch is one second around each 0.1 s frame
    (`[..., patch_frames, mel_bins]`, a channel axis is added) and the sizes are arguments, so
    small models train on a CPU. Every leading axis is a batch axis: `[B, T, P, M]` gives
    `[B, T, 128]`.

    Args:
        embedding_dim: int. Feature size per frame. Defaults to 128.
        filters: list of int. Filters per conv block. Defaults to (64, 128, 256, 512).
        convs_per_block: int or list of int. Defaults to VGGish's (1, 1, 2, 2) for four
            blocks, else 1.
        dense_units: int. Units of the two hidden dense layers. Defaults to 4096.
        batch_norm: bool. Batch normalisation after every convolution. Defaults to False (VGGish has none).
        freeze_trunk: bool. Only the last two dense layers trainable. Defaults to False.
        **kwargs: base layer arguments.

    >>> backbone = VGGish(filters=(8, 16), convs_per_block=1, dense_units=32)
    >>> backbone(keras.ops.zeros((2, 5, 20, 16))).shape
    (2, 5, 128)
    """

    FIXED_ARGUMENTS = ("frame_rank", "pooling")

    def __init__(
        self,
        embedding_dim=128,
        filters=(64, 128, 256, 512),
        convs_per_block=None,
        dense_units=4096,
        batch_norm=False,
        freeze_trunk=False,
        **kwargs,
    ):
        if convs_per_block is None:  # VGGish's own layout for four blocks, one conv per block otherwise
            convs_per_block = (1, 1, 2, 2) if len(tuple(filters)) == 4 else 1
        super().__init__(
            2,
            embedding_dim,
            filters,
            convs_per_block=convs_per_block,
            dense_units=dense_units,
            pooling="flatten",
            batch_norm=batch_norm,
            freeze_trunk=freeze_trunk,
            **kwargs,
        )
