"""A GRU layer for training that computes what `keras.layers.GRU` computes, faster.

With recurrent dropout, Keras runs its GRU cell one gate at a time: per time
step six small matrix products, six mask products and a dozen more ops, each
a separate op in TensorFlow's loop, which on a CPU costs more than the
arithmetic. This layer does the same arithmetic in fewer, larger ops:

- the inputs of all time steps are projected before the loop, in one product
  per gate (the input dropout masks are the same at every step, as in Keras);
- inside the loop the three gates' recurrent products are one batched product;
- the whole loop is meant to be compiled by XLA (`jit_compile=True`).

Equations and weights are Keras 3's (`reset_after=True`, gates in the order
z, r, h, `kernel`, `recurrent_kernel`, `bias` of shape (2, 3 * units)), so
weights copy one to one into `keras.layers.GRU`, and a test checks both
compute the same function. Dropout masks are drawn afresh for every batch,
one per gate, as Keras does; the random numbers themselves differ.
Only what charpipe trains is implemented: tanh and sigmoid, biases,
`return_sequences=True`.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="charpipe")
class FastGRU(keras.layers.Layer):
    def __init__(self, units: int, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 stateful: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.stateful, self.seed = units, stateful, seed
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        batch_size, _, n_inputs = input_shape
        u = self.units
        # Keras GRU's initialisers, so a fresh model starts like the book's.
        self.kernel = self.add_weight(shape=(n_inputs, 3 * u), name="kernel",
                                      initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(shape=(u, 3 * u), name="recurrent_kernel",
                                                initializer="orthogonal")
        self.bias = self.add_weight(shape=(2, 3 * u), name="bias", initializer="zeros")
        if self.stateful:
            if batch_size is None:
                raise ValueError("a stateful FastGRU needs a fixed batch size")
            self.state = self.add_weight(shape=(batch_size, u), name="state",
                                         initializer="zeros", trainable=False)

    @property
    def states(self) -> list:
        return [self.state] if self.stateful else []

    def reset_state(self) -> None:
        self.state.assign(tf.zeros_like(self.state))

    def _masks(self, shape, rate: float, training: bool):
        if not training or rate <= 0:
            return None
        return keras.random.dropout(tf.ones(shape), rate, seed=self.seed_generator)

    def call(self, inputs, training=False):
        u, batch = self.units, tf.shape(inputs)[0]
        n_inputs = inputs.shape[-1]
        # (3, n_inputs, u): one kernel per gate, z, r, h.
        kernels = tf.transpose(tf.reshape(self.kernel, (n_inputs, 3, u)), (1, 0, 2))
        recurrents = tf.transpose(tf.reshape(self.recurrent_kernel, (u, 3, u)), (1, 0, 2))
        recurrent_bias = tf.reshape(self.bias[1], (3, 1, u))

        masks = self._masks((3, batch, 1, n_inputs), self.dropout, training)
        if masks is None:
            projected = tf.matmul(inputs, self.kernel)
        else:
            per_gate = tf.einsum("gbti,giu->gbtu", inputs[None] * masks, kernels)
            projected = tf.concat(tf.unstack(per_gate), axis=-1)
        projected = tf.transpose(projected + self.bias[0], (1, 0, 2))  # (t, b, 3u)

        recurrent_masks = self._masks((3, batch, u), self.recurrent_dropout, training)

        def step(h, x):
            held = tf.stack([h, h, h])
            if recurrent_masks is not None:
                held = held * recurrent_masks
            inner = tf.matmul(held, recurrents) + recurrent_bias
            z = tf.sigmoid(x[:, :u] + inner[0])
            r = tf.sigmoid(x[:, u : 2 * u] + inner[1])
            candidate = tf.tanh(x[:, 2 * u :] + r * inner[2])
            return z * h + (1.0 - z) * candidate

        start = self.state if self.stateful else tf.zeros((batch, u), inputs.dtype)
        hidden = tf.scan(step, projected, initializer=tf.convert_to_tensor(start))
        if self.stateful:
            self.state.assign(hidden[-1])
        return tf.transpose(hidden, (1, 0, 2))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "stateful": self.stateful,
                "seed": self.seed}
