"""The book's recipe, written again here as the yardstick charpipe is timed against.

The "Shakespeare char-RNN" chapter prepares text with a Keras Tokenizer (ids
ranked by frequency), feeds a stateful model through `tf.data`'s `window` /
`flat_map` / `zip` with one-hot inputs, and generates by feeding the whole
text so far back through a stateless copy for every new character. Keras 3
changes: `keras.Input(batch_shape=...)` instead of `batch_input_shape`, each
stateful layer reset on its own, and Dense applied to 3-D input where the book
wraps it in TimeDistributed (Keras 3 gives that a wrong time axis here).
"""

import collections

import keras
import numpy as np
import tensorflow as tf


def encode(text: str) -> tuple[np.ndarray, dict]:
    """Lower-cased ids ranked by frequency, as the book's Tokenizer gave them."""
    text = text.lower()
    ranked = [c for c, _ in collections.Counter(text).most_common()]
    char_to_id = {c: i for i, c in enumerate(ranked)}
    return np.array([char_to_id[c] for c in text], dtype=np.int64), char_to_id


def dataset(ids: np.ndarray, batch_size: int, n_steps: int, vocab_size: int):
    """One tf.data stream per batch slot, zipped: slot i continues slot i."""
    length = n_steps + 1
    streams = []
    for part in np.array_split(ids, batch_size):
        stream = tf.data.Dataset.from_tensor_slices(part)
        stream = stream.window(length, shift=n_steps, drop_remainder=True)
        streams.append(stream.flat_map(lambda w: w.batch(length)))
    ds = tf.data.Dataset.zip(tuple(streams)).map(lambda *w: tf.stack(w))
    ds = ds.map(lambda w: (tf.one_hot(w[:, :-1], depth=vocab_size), w[:, 1:]))
    return ds.prefetch(1)


def build(vocab_size: int, batch_size: int | None, stateful: bool, units: int = 128,
          dropout: float = 0.2, recurrent_dropout: float = 0.2) -> keras.Model:
    return keras.Sequential([
        keras.Input(batch_shape=(batch_size, None, vocab_size)),
        keras.layers.GRU(units, return_sequences=True, stateful=stateful,
                         dropout=dropout, recurrent_dropout=recurrent_dropout),
        keras.layers.GRU(units, return_sequences=True, stateful=stateful,
                         dropout=dropout, recurrent_dropout=recurrent_dropout),
        keras.layers.Dense(vocab_size, activation="softmax"),
    ])


class ResetStates(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()


def train(ids: np.ndarray, vocab_size: int, batch_size: int, n_steps: int,
          callbacks: list, units: int = 128) -> keras.Model:
    """One epoch of stateful training, as the book runs it."""
    model = build(vocab_size, batch_size, stateful=True, units=units)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    model.fit(dataset(ids, batch_size, n_steps, vocab_size), epochs=1,
              callbacks=[ResetStates(), *callbacks], verbose=0)
    return model


def complete(model: keras.Model, prefixes: np.ndarray, n_chars: int,
             temperature: float = 1.0) -> np.ndarray:
    """The book's generator on a batch of prefixes: re-reads all of each text
    for every new character."""
    ids = np.asarray(prefixes, dtype=np.int64)
    vocab_size = model.layers[-1].units
    for _ in range(n_chars):
        probs = model.predict(tf.one_hot(ids, vocab_size), verbose=0)[:, -1, :]
        rescaled = tf.math.log(probs) / temperature
        new = tf.random.categorical(rescaled, num_samples=1).numpy()
        ids = np.concatenate([ids, new], axis=1)
    return ids
