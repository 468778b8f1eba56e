"""Gaussian latent context head of COLD fusion (mu, sigma and a reparameterised sample)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cold_keras")
class GaussianContextHead(keras.layers.Layer):
    """Frame-wise diagonal Gaussian over the latent context h_m of one modality.

        mu = W_mu x + b_mu,   sigma = softplus(W_s x + b_s) + epsilon
        h = mu + sigma * e,  e ~ N(0, I)   (training: a reparameterised sample of
                                             `tfd.MultivariateNormalDiag(mu, sigma)`)
        h = mu                               (inference)

    The distribution is built inside `call` and only tensors leave the layer (Keras 3 layers cannot
    output a TFP distribution). The layer computes in float32 by default, also under a mixed
    precision policy, so sigma, its norm and the KL prior stay accurate.

    Args:
        latent_dim: int. Latent size K.
        epsilon: float > 0. Lower bound added to the softplus scale. Defaults to 1e-4.
        seed: int or None. Seed of the sampling noise. Defaults to None.
        **kwargs: base layer arguments. `dtype` defaults to "float32".

    Call arguments:
        inputs: `[B, T, D]` features.
        training: bool. Sample (True) or return mu (False).

    Output: tuple `(h, mu, sigma)`, each `[B, T, K]` float32.

    >>> head = GaussianContextHead(latent_dim=4, seed=1)
    >>> h, mu, sigma = head(keras.ops.zeros((2, 5, 3)))
    >>> bool(keras.ops.all(sigma > 0))
    True
    """

    def __init__(self, latent_dim, epsilon=1e-4, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}.")
        self.latent_dim = int(latent_dim)
        self.epsilon = float(epsilon)
        self.seed = seed
        self.mu_dense = keras.layers.Dense(self.latent_dim, dtype=self.dtype_policy, name="mu_dense")
        self.sigma_dense = keras.layers.Dense(self.latent_dim, dtype=self.dtype_policy, name="sigma_dense")
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def build(self, input_shape):
        self.mu_dense.build(input_shape)
        self.sigma_dense.build(input_shape)

    def call(self, inputs, training=None):
        mu = self.mu_dense(inputs)
        sigma = ops.softplus(self.sigma_dense(inputs)) + self.epsilon
        if training:
            # Imported at the first training call: importing TensorFlow Probability takes about a
            # second, which a command that only predicts need not pay.
            import tensorflow_probability as tfp

            distribution = tfp.distributions.MultivariateNormalDiag(loc=mu, scale_diag=sigma)
            seed = ops.cast(self.seed_generator.next(), "int32")
            h = distribution.sample(seed=seed)
        else:
            h = mu
        return h, mu, sigma

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)[:-1] + (self.latent_dim,)
        return shape, shape, shape

    def get_config(self):
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "epsilon": self.epsilon,
            "seed": self.seed,
        }
