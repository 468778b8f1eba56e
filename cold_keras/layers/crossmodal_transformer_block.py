"""Crossmodal transformer block (Tsai et al. 2019, Multimodal Transformer)."""

import keras
from keras import ops

from cold_keras.layers.temporal_block import frame_mask_to_bool


@keras.saving.register_keras_serializable(package="cold_keras")
class CrossmodalTransformerBlock(keras.layers.Layer):
    """One crossmodal attention layer: the target modality attends to the source modality.

    Pre-norm form of Tsai et al. (2019), for a source -> target direction (e.g. A -> V: the visual
    stream queries the audio stream):

        Z = Z_t + Dropout(MHA(query=LN(Z_t), key=value=LN(X_s), key padding mask))
        Z = Z + Dropout(FFN(LN(Z))),   FFN(x) = W_2 relu(W_1 x + b_1) + b_2

    Padded source frames are excluded from the attention by the key padding mask, so they never reach
    a real frame. Stacking blocks and feeding both directions is up to the model.

    Args:
        num_heads: int. Attention heads. Defaults to 16.
        key_dim: int or None. Size per head. Defaults to None (target feature size / num_heads).
        ff_dim: int or None. Hidden size of the FFN. Defaults to None (4 x target feature size).
        dropout: float in [0, 1). Attention, residual and FFN dropout. Defaults to 0.1.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[target, source]`, `[B, T_t, D]` and `[B, T_s, D_s]`.
        mask: `[B, T_s]` float or bool source frame mask (1 = real frame), or None.
        training: bool. Enables dropout.

    Output shape: `[B, T_t, D]`.

    >>> block = CrossmodalTransformerBlock(num_heads=2)
    >>> tuple(block([keras.ops.zeros((1, 5, 8)), keras.ops.zeros((1, 5, 6))]).shape)
    (1, 5, 8)
    """

    def __init__(self, num_heads=16, key_dim=None, ff_dim=None, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}.")
        if key_dim is not None and int(key_dim) < 1:
            raise ValueError(f"key_dim must be a positive integer or None, got {key_dim!r}.")
        if ff_dim is not None and int(ff_dim) < 1:
            raise ValueError(f"ff_dim must be a positive integer or None, got {ff_dim!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.num_heads = int(num_heads)
        self.key_dim = None if key_dim is None else int(key_dim)
        self.ff_dim = None if ff_dim is None else int(ff_dim)
        self.dropout = float(dropout)

    def build(self, input_shape):
        target_shape, source_shape = (tuple(s) for s in input_shape)
        model_dim = target_shape[-1]
        key_dim = self.key_dim
        if key_dim is None:
            if model_dim % self.num_heads:
                raise ValueError(
                    f"The target feature size {model_dim} is not divisible by num_heads="
                    f"{self.num_heads}; pass key_dim or change the size."
                )
            key_dim = model_dim // self.num_heads
        ff_dim = self.ff_dim or 4 * model_dim
        policy = self.dtype_policy
        self.target_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="target_norm")
        self.source_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="source_norm")
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=key_dim,
            dropout=self.dropout,
            dtype=policy,
            name="crossmodal_attention",
        )
        self.attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="attention_dropout")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy, name="ffn_norm")
        self.ffn_hidden = keras.layers.Dense(ff_dim, activation="relu", dtype=policy, name="ffn_hidden")
        self.ffn_output = keras.layers.Dense(model_dim, dtype=policy, name="ffn_output")
        self.ffn_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="ffn_dropout")
        self.target_norm.build(target_shape)
        self.source_norm.build(source_shape)
        self.attention.build(target_shape, source_shape, source_shape)
        self.ffn_norm.build(target_shape)
        self.ffn_hidden.build(target_shape)
        self.ffn_output.build(target_shape[:-1] + (ff_dim,))

    def call(self, inputs, mask=None, training=None):
        target, source = inputs
        if isinstance(mask, (list, tuple)):
            # Keras fills `mask` with the inputs' own Keras masks ([target, source]) when none is given.
            mask = mask[1]
        attention_mask = None
        if mask is not None:
            key_mask = frame_mask_to_bool(mask, ops.shape(source)[1])
            # [B, T_t, T_s]: every query frame may attend to every real source frame.
            attention_mask = ops.logical_and(
                ops.ones((ops.shape(target)[0], ops.shape(target)[1], 1), dtype="bool"),
                ops.expand_dims(key_mask, 1),
            )
        source_normed = self.source_norm(source)
        attended = self.attention(
            query=self.target_norm(target),
            value=source_normed,
            key=source_normed,
            attention_mask=attention_mask,
            training=training,
        )
        x = target + self.attention_dropout(attended, training=training)
        hidden = self.ffn_output(self.ffn_hidden(self.ffn_norm(x)))
        return x + self.ffn_dropout(hidden, training=training)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout,
        }
