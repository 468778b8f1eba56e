"""A Keras GRU whose input projection runs once per sequence instead of once per time step."""

import keras
from keras import ops
from keras.src import backend  # the RNN loop of the active backend (what keras.layers.GRU uses)


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU."""
    return _gpu_available()


def _gpu_available():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def cudnn_blockers(gru) -> list:
    """What keeps a Keras GRU layer off the cuDNN kernel on a GPU (empty list: nothing).

    TensorFlow runs a GRU with cuDNN only with `activation="tanh"`, `recurrent_activation="sigmoid"`,
    `reset_after=True`, a bias, no recurrent dropout and `unroll=False`; at run time the mask must
    also be right-padded (padding only at the end of each sequence) and no sequence may be empty.

    >>> cudnn_blockers(keras.layers.GRU(4, recurrent_dropout=0.1))
    ['recurrent_dropout=0.1 (needs 0)']
    """
    cell = gru.cell
    blockers = []
    if cell.activation is not keras.activations.tanh:
        blockers.append(f"activation={getattr(cell.activation, '__name__', cell.activation)} (needs tanh)")
    if cell.recurrent_activation is not keras.activations.sigmoid:
        name = getattr(cell.recurrent_activation, "__name__", cell.recurrent_activation)
        blockers.append(f"recurrent_activation={name} (needs sigmoid)")
    if not cell.reset_after:
        blockers.append("reset_after=False (needs True)")
    if not cell.use_bias:
        blockers.append("use_bias=False (needs True)")
    if cell.recurrent_dropout:
        blockers.append(f"recurrent_dropout={cell.recurrent_dropout} (needs 0)")
    if gru.unroll:
        blockers.append("unroll=True (needs False)")
    return blockers


def gru_recurrence(projected, recurrent_kernel, recurrent_bias, initial_state):
    """The GRU recurrence over projected inputs, with a hand-written backward pass (TensorFlow).

    `projected` [B, T, 3U] holds `x W + b_x` of every frame (gates z, r, candidate, in Keras'
    order), `recurrent_kernel` [U, 3U], `recurrent_bias` [3U] and `initial_state` [B, U]; returns the
    states h_1 .. h_T as [B, T, U]. Per step, with `reset_after=True` (Keras' and cuDNN's gates):

        a = h W_h + b_h;  z = sigmoid(x_z + a_z);  r = sigmoid(x_r + a_r)
        n = tanh(x_n + r * a_n);  h' = z * h + (1 - z) * n

    The forward loop keeps only the states. The backward pass recomputes the gates of every step at
    once from the states (one matrix product over all frames), runs one loop from the last step to
    the first that carries dL/dh (an element-wise chain and one `[B, 3U] x [3U, U]` product per
    step), and gets dL/dW_h and dL/db_h from all steps at once. TensorFlow's own gradient of the
    loop stores every intermediate of every step and replays them in a loop of its own, 3-4 times
    the cost of this one at the paper's sizes; the gradients are the same up to float rounding.
    """
    import tensorflow as tf

    units = initial_state.shape[-1]

    def step(h, inputs, recurrent_kernel, recurrent_bias):
        recurrent = tf.matmul(h, recurrent_kernel) + recurrent_bias
        z = tf.sigmoid(inputs[:, :units] + recurrent[:, :units])
        r = tf.sigmoid(inputs[:, units : 2 * units] + recurrent[:, units : 2 * units])
        candidate = tf.tanh(inputs[:, 2 * units :] + r * recurrent[:, 2 * units :])
        return z * h + (1.0 - z) * candidate

    @tf.custom_gradient
    def recurrence(projected, recurrent_kernel, recurrent_bias, initial_state):
        steps = tf.shape(projected)[1]
        inputs = tf.transpose(projected, [1, 0, 2])  # time-major [T, B, 3U]

        def body(t, h, states):
            h = step(h, inputs[t], recurrent_kernel, recurrent_bias)
            return t + 1, h, states.write(t, h)

        states = tf.TensorArray(projected.dtype, size=steps)
        _, _, states = tf.while_loop(lambda t, *_: t < steps, body, (0, initial_state, states))
        states = states.stack()  # [T, B, U]

        def grad(d_outputs):
            previous = tf.concat([initial_state[None], states[:-1]], 0)
            recurrent = tf.matmul(previous, recurrent_kernel) + recurrent_bias
            z = tf.sigmoid(inputs[..., :units] + recurrent[..., :units])
            r = tf.sigmoid(inputs[..., units : 2 * units] + recurrent[..., units : 2 * units])
            a_n = recurrent[..., 2 * units :]
            n = tf.tanh(inputs[..., 2 * units :] + r * a_n)
            # dL/d(pre-activation) = dL/dh' * factor, per gate; only dL/dh' comes from later steps.
            factor_z = (previous - n) * z * (1.0 - z)
            factor_n = (1.0 - z) * (1.0 - n * n)
            factor_r = a_n * r * (1.0 - r)
            d_states = tf.transpose(d_outputs, [1, 0, 2])
            kernel_t = tf.transpose(recurrent_kernel)

            def back(t, d_h, d_inputs):
                d_h = d_states[t] + d_h
                d_z = d_h * factor_z[t]
                d_n = d_h * factor_n[t]
                d_r = d_n * factor_r[t]
                d_recurrent = tf.concat([d_z, d_r, d_n * r[t]], -1)
                d_h = d_h * z[t] + tf.matmul(d_recurrent, kernel_t)
                return t - 1, d_h, d_inputs.write(t, tf.concat([d_z, d_r, d_n], -1))

            d_inputs = tf.TensorArray(projected.dtype, size=steps)
            _, d_initial, d_inputs = tf.while_loop(
                lambda t, *_: t >= 0, back, (steps - 1, tf.zeros_like(initial_state), d_inputs)
            )
            d_inputs = d_inputs.stack()  # [T, B, 3U]
            d_recurrent = d_inputs * tf.concat([tf.ones_like(r), tf.ones_like(r), r], -1)
            d_kernel = tf.einsum("tbu,tbg->ug", previous, d_recurrent)
            d_bias = tf.reduce_sum(d_recurrent, [0, 1])
            return tf.transpose(d_inputs, [1, 0, 2]), d_kernel, d_bias, d_initial

        return tf.transpose(states, [1, 0, 2]), grad

    if recurrent_bias is None:
        recurrent_bias = tf.zeros([3 * units], projected.dtype)
    # Read variables here, outside the function whose gradient is given (a Keras variable's `value`
    # is the TensorFlow variable itself).
    arguments = [tf.convert_to_tensor(value) for value in (projected, recurrent_kernel, recurrent_bias, initial_state)]
    return recurrence(*arguments)


@keras.saving.register_keras_serializable(package="cold_keras")
class ProjectedGRU(keras.layers.GRU):
    """`keras.layers.GRU` with the input projection hoisted out of the recurrence (CPU path).

    Keras' own GRU multiplies every frame's input by the kernel inside the time loop, one
    `[B, D] x [D, 3U]` product per step, which reads the whole kernel from memory at every step.
    This layer computes `x W + b_x` for all frames of the sequence in one matrix product and runs
    only the recurrent part `h W_h + b_h` in the loop (what cuDNN and PyTorch's CPU GRU do). The
    weights, their names, the gate equations (`reset_after=True`), the masking and `go_backwards`
    are Keras' own, so the outputs equal `keras.layers.GRU`'s up to float rounding and a saved
    `GRU` and a `ProjectedGRU` share their weights.

    The hoisted path is taken when the GRU uses Keras' default gates (`activation="tanh"`,
    `recurrent_activation="sigmoid"`, `reset_after=True`), no input or recurrent dropout and no
    GPU is visible; otherwise (e.g. on a GPU, where cuDNN does the same and more) the call falls
    back to `keras.layers.GRU` unchanged. With a mask (and `return_sequences=True`) the loop runs
    unmasked: the real frames of each sequence are moved to the front in their order (nothing moves
    for a right-padded mask), each sequence runs within its own length, as cuDNN does, and the
    outputs go back to their frames; the outputs of the real frames are those of Keras' masked loop
    and masked frames get zeros, for any mask layout. The final state is then not used by any
    caller in this package.

    Args: as `keras.layers.GRU`.

    >>> gru = ProjectedGRU(4, return_sequences=True)
    >>> tuple(gru(keras.ops.zeros((2, 5, 3))).shape)
    (2, 5, 4)
    """

    def _hoistable(self):
        cell = self.cell
        return (
            cell.reset_after
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and not cell.dropout
            and not cell.recurrent_dropout
            and keras.backend.backend() == "tensorflow"
            and not _gpu_available()
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not self._hoistable():
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        units = cell.units
        projected = ops.matmul(sequences, cell.kernel)
        # Read (and, under a mixed policy, cast) the recurrent weights once, outside the loop: read
        # inside `step`, every time step would cast the whole kernel again (and its gradient too).
        recurrent_kernel = cell.recurrent_kernel.value
        recurrent_bias = None
        if cell.use_bias:
            bias = cell.bias.value
            projected = projected + bias[0]
            recurrent_bias = bias[1]
        # Under a mixed policy the input projection (one large matmul over every frame) runs in the
        # compute dtype, the recurrence in float32: its per-step matmuls are small (batch x units),
        # where bfloat16 gains nothing on a CPU while its element-wise gates cost more, and the state
        # keeps float32 precision over hundreds of steps. The outputs return in the compute dtype.
        compute_dtype = keras.backend.standardize_dtype(projected.dtype)
        if compute_dtype != "float32":
            projected = ops.cast(projected, "float32")
            recurrent_kernel = ops.cast(recurrent_kernel, "float32")
            initial_state = ops.cast(initial_state, "float32")
            if recurrent_bias is not None:
                recurrent_bias = ops.cast(recurrent_bias, "float32")

        def step(inputs, states):
            h = states[0]
            recurrent = ops.matmul(h, recurrent_kernel)
            if recurrent_bias is not None:
                recurrent = recurrent + recurrent_bias
            z = ops.sigmoid(inputs[:, :units] + recurrent[:, :units])
            r = ops.sigmoid(inputs[:, units : 2 * units] + recurrent[:, units : 2 * units])
            candidate = ops.tanh(inputs[:, 2 * units :] + r * recurrent[:, 2 * units :])
            h = z * h + (1.0 - z) * candidate
            return h, [h]

        def loop(values, loop_mask, go_backwards):
            if loop_mask is None and self.return_sequences and not self.unroll:
                if go_backwards:
                    values = ops.flip(values, axis=1)  # outputs in processing order, as Keras' loop
                outputs = gru_recurrence(values, recurrent_kernel, recurrent_bias, initial_state)
                last = outputs[:, -1]
                return ops.cast(last, compute_dtype), ops.cast(outputs, compute_dtype), [ops.cast(last, compute_dtype)]
            last, outputs, states = backend.rnn(
                step,
                values,
                [initial_state],
                go_backwards=go_backwards,
                mask=loop_mask,
                unroll=self.unroll,
                input_length=sequences.shape[1],
                zero_output_for_mask=self.zero_output_for_mask,
                return_all_outputs=self.return_sequences,
            )
            return (
                ops.cast(last, compute_dtype),
                ops.cast(outputs, compute_dtype),
                [ops.cast(state, compute_dtype) for state in states],
            )

        if mask is None or not (self.return_sequences and self.zero_output_for_mask) or self.unroll:
            return loop(projected, mask, self.go_backwards)

        import tensorflow as tf

        # The masked loop skips the masked frames: the state carries over them and they output
        # zeros, so each sequence's real frames see the GRU run over those frames alone, in order.
        # The same without masking inside the loop: the real frames are moved to the front in their
        # order (a stable sort; nothing moves for a right-padded mask, the input pipeline's), the
        # loop runs unmasked, the backward direction on each sequence reversed within its own length
        # (as cuDNN does), so the padding comes last in both directions; the outputs go back to
        # their frames and the masked frames get zeros. One graph for every mask layout (no branch
        # on the layout, whose gradient graph would double the tracing time).
        mask = ops.cast(mask, "bool")
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        order = tf.argsort(ops.cast(ops.logical_not(mask), "int32"), axis=1, stable=True)
        values = tf.gather(projected, order, batch_dims=1)
        if self.go_backwards:
            values = tf.reverse_sequence(values, lengths, seq_axis=1, batch_axis=0)
        last, outputs, states = loop(values, None, False)
        if self.go_backwards:
            outputs = tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0)
        outputs = tf.gather(outputs, tf.argsort(order, axis=1, stable=True), batch_dims=1)
        outputs = outputs * ops.cast(mask[..., None], outputs.dtype)
        if self.go_backwards:
            # Keras' backward layers return their outputs in reversed time order.
            outputs = ops.flip(outputs, axis=1)
        return last, outputs, states
