"""Optimisers: Keras' AdamW with the learning rate and Adam's step coefficients computed once per step.

`keras.optimizers.AdamW` reads `self.learning_rate` once for the Adam updates but once more for the
weight decay of every weight, and every weight's `update_step` recomputes the same scalars (the step
count, beta_1^t, beta_2^t and the bias-corrected step size). With a learning-rate schedule each read
builds the schedule again: a traced training step of COLD fusion held 45 copies of
`CosineDecayRestarts` (about 1,900 of its 10,000 operations), which TensorFlow traces, optimises and
runs at every step. `AdamW` here is the same optimiser, with the same arguments, configuration,
variables and updates (the same operations on the same values, so identical weights), whose scalars
are computed once per step and shared by all weights.
"""

import keras
from keras import ops


class _StepValues:
    """Values computed once per optimiser step and reused for every weight (a plain, untracked object)."""

    def __init__(self):
        self.learning_rate = None
        self.coefficients = {}


@keras.saving.register_keras_serializable(package="cold_keras")
class AdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` evaluating the learning rate once per step for all weights.

    Within a step (`apply`, `apply_gradients`, `fit`), the learning rate (a schedule, a callable or
    the learning-rate variable) is evaluated once, before any weight changes, and that value serves
    the weight decay of every weight and every Adam update; Adam's scalars (the step count, beta_1^t,
    beta_2^t and lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)) are computed once per weight dtype. Keras'
    AdamW evaluates the same expressions on the same values once per weight, so the updates are
    identical. Arguments, `get_config` and the optimiser variables are Keras' own: a `.keras` file
    saved with this optimiser reloads it (registered as `cold_keras>AdamW`), and a model compiled
    with it loads the optimiser state of a file saved with `keras.optimizers.AdamW`.

    With `use_ema=True` (and `ema_momentum`) the optimiser keeps Keras' exponential moving average of
    the weights, updated after every step; `swap_average_weights` exchanges the weights and their
    averages exactly (a second call undoes it), and `finalize_to_average = False` keeps the training
    weights at the end of `fit` (Keras' default copies the averages into them; a run continued in a
    second `fit` needs its training weights).

    Args: as `keras.optimizers.AdamW`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._step_values = _StepValues()
        self.finalize_to_average = True

    def finalize_variable_values(self, var_list):
        if self.finalize_to_average:
            super().finalize_variable_values(var_list)

    def swap_average_weights(self):
        """Exchanges the trainable weights and their moving averages (`use_ema`), bit for bit."""
        if not self.use_ema or not self.built:
            raise ValueError("swap_average_weights needs a built optimiser with use_ema=True")
        for variable, average in zip(self._trainable_variables, self._model_variables_moving_average):
            current = ops.convert_to_numpy(variable)
            variable.assign(average)
            average.assign(current)

    def _current_step(self):
        step = getattr(self, "_step_values", None)
        return step if step is not None and step.learning_rate is not None else None

    def _get_current_learning_rate(self):
        step = self._current_step()
        if step is not None:
            return step.learning_rate
        return super()._get_current_learning_rate()

    def _backend_apply_gradients(self, grads, trainable_variables):
        step = self._step_values
        step.learning_rate = ops.convert_to_tensor(super()._get_current_learning_rate())
        step.coefficients = {}
        try:
            super()._backend_apply_gradients(grads, trainable_variables)
        finally:
            step.learning_rate = None
            step.coefficients = {}

    def _coefficients(self, dtype, learning_rate):
        """Adam's scalars for one weight dtype: the bias-corrected step size as Keras' `Adam.update_step`
        computes it, and the constants 1 - beta_1, 1 - beta_2 and epsilon as its operations convert them."""
        lr = ops.cast(learning_rate, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), local_step)
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        constants = (1 - self.beta_1, 1 - self.beta_2, self.epsilon)
        return (alpha,) + tuple(ops.convert_to_tensor(c, dtype=dtype) for c in constants)

    def update_step(self, gradient, variable, learning_rate):
        """Keras' `Adam.update_step`, with its scalars computed once per step and dtype."""
        dtype = variable.dtype
        step = self._current_step()
        if step is None:
            coefficients = self._coefficients(dtype, learning_rate)
        else:
            if dtype not in step.coefficients:
                step.coefficients[dtype] = self._coefficients(dtype, learning_rate)
            coefficients = step.coefficients[dtype]
        alpha, one_minus_beta_1, one_minus_beta_2, epsilon = coefficients
        gradient = ops.cast(gradient, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), one_minus_beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), one_minus_beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[self._get_variable_index(variable)]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), epsilon)))
