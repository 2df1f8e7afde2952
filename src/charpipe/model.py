"""The book's char-RNN in Keras 3: stacked GRUs and a softmax over characters.

Inputs are character ids. The first layer is a frozen identity embedding,
which is exactly a one-hot encoding (the book's `tf.one_hot`) but lives inside
the model, so a saved model takes ids and needs no preprocessing code.
"""

import json
from pathlib import Path

import keras
import numpy as np

from charpipe.errors import CharpipeError
from charpipe.gru import FastGRU


class ModelError(CharpipeError, ValueError):
    """A model file is missing, foreign, or does not fit its vocabulary."""


def build(vocab_size: int, units: int = 128, n_layers: int = 2, dropout: float = 0.2,
          recurrent_dropout: float = 0.2, batch_size: int | None = None,
          stateful: bool = False, fast: bool = False) -> keras.Model:
    """The char-RNN; `fast` swaps in `FastGRU` (same function) for training."""
    # Keras 3 dropped `batch_input_shape`; a stateful layer needs the batch size
    # fixed here, and then only accepts batches of exactly that size.
    ids = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, vocab_size, embeddings_initializer="identity",
                               trainable=False, name="one_hot")(ids)
    for i in range(n_layers):
        if fast:
            x = FastGRU(units, dropout=dropout, recurrent_dropout=recurrent_dropout,
                        stateful=stateful, name=f"gru_{i}")(x)
            continue
        x = keras.layers.GRU(units, return_sequences=True, stateful=stateful,
                             dropout=dropout, recurrent_dropout=recurrent_dropout,
                             name=f"gru_{i}")(x)
    # The book wraps this in TimeDistributed; with a fixed batch size and an
    # unknown time axis Keras 3 then trains on a wrong shape. Dense maps the
    # last axis of 3-D input the same way.
    probs = keras.layers.Dense(vocab_size, activation="softmax", name="next_char")(x)
    return keras.Model(ids, probs, name="char_rnn")


def hyperparameters(model: keras.Model) -> dict:
    grus = gru_layers(model)
    return {
        "vocab_size": int(model.output.shape[-1]), "units": grus[0].units,
        "n_layers": len(grus), "dropout": grus[0].dropout,
        "recurrent_dropout": grus[0].recurrent_dropout,
    }


def gru_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers
            if isinstance(layer, (keras.layers.GRU, FastGRU))]


def layer_weights(layer) -> list[np.ndarray]:
    """A layer's weights without any carried state: what a twin must copy."""
    if isinstance(layer, FastGRU):
        return [keras.ops.convert_to_numpy(w)
                for w in (layer.kernel, layer.recurrent_kernel, layer.bias)]
    return layer.get_weights()


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every layer's weights to the layer of the same name.

    Raises ValueError when a layer is missing or its weights' shapes differ.
    """
    for layer in target.layers:
        if not layer.weights:
            continue
        weights = layer_weights(source.get_layer(layer.name))
        if not isinstance(layer, FastGRU):
            layer.set_weights(weights)
            continue
        # A stateful FastGRU also holds its state as a weight: leave it be.
        variables = (layer.kernel, layer.recurrent_kernel, layer.bias)
        shapes = [tuple(v.shape) for v in variables]
        if [tuple(w.shape) for w in weights] != shapes:
            raise ValueError(f"layer {layer.name!r} has weights of shapes {shapes}, "
                             f"got {[tuple(w.shape) for w in weights]}")
        for variable, value in zip(variables, weights):
            variable.assign(value)


def reset_states(model: keras.Model) -> None:
    # Keras 3 removed Model.reset_states(); each stateful layer resets itself.
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def states(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(layer.states[0]) for layer in gru_layers(model)]


def compile_for_training(model: keras.Model, learning_rate: float,
                         jit_compile: bool = False) -> None:
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  jit_compile=jit_compile)


def with_batch_size(model: keras.Model, batch_size: int | None,
                    stateful: bool) -> keras.Model:
    """The same network and weights, rebuilt with Keras GRUs for another batch size."""
    twin = build(**hyperparameters(model), batch_size=batch_size, stateful=stateful)
    copy_weights(model, twin)
    return twin


def to_stateless(model: keras.Model) -> keras.Model:
    return with_batch_size(model, batch_size=None, stateful=False)


def load(path) -> keras.Model:
    """Load a .keras file without running any code stored in it."""
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelError(f"{path} is not a charpipe model that Keras can load "
                         f"safely: {exc}") from exc
    if not gru_layers(model) or len(model.inputs) != 1:
        raise ModelError(f"{path} is a Keras model, but not a charpipe char-RNN")
    return model


def load_folder(folder) -> tuple[keras.Model, list[str]]:
    """A stateless model and its vocabulary, as the convert stage writes them.

    The folder is checked before anything is loaded: its manifest (when it
    has one) must match its files, and the vocabulary must fit the model.
    """
    from charpipe import store
    from charpipe.stages import MODEL_FILE, VOCAB_FILE

    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file() or not (folder / VOCAB_FILE).is_file():
        raise ModelError(f"{folder} is not a model folder: it needs {MODEL_FILE} and "
                         f"{VOCAB_FILE}, as the convert stage writes them")
    if (folder / store.MANIFEST).exists() and (problem := store.verify(folder)):
        raise ModelError(f"{folder} is damaged ({problem}); it was not loaded. "
                         "Run the pipeline again to rebuild it.")
    try:
        vocab = json.loads((folder / VOCAB_FILE).read_text())
    except ValueError as exc:
        raise ModelError(f"{folder / VOCAB_FILE} is not valid JSON: {exc}") from exc
    if (not isinstance(vocab, list) or len(set(vocab)) != len(vocab)
            or not all(isinstance(c, str) and len(c) == 1 for c in vocab)):
        raise ModelError(f"{folder / VOCAB_FILE} is not a list of distinct characters")
    model = load(folder / MODEL_FILE)
    if model.output.shape[-1] != len(vocab):
        raise ModelError(f"{folder}: the model predicts {model.output.shape[-1]} "
                         f"characters but its vocabulary has {len(vocab)}; the two "
                         "files do not belong together")
    return model, vocab


def next_char_loss(probs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy in nats/char and accuracy of argmax predictions."""
    picked = np.take_along_axis(probs, targets[..., None].astype(np.int64), axis=-1)
    nats = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
    accuracy = float(np.mean(np.argmax(probs, axis=-1) == targets))
    return nats, accuracy


def heldout_loss(model: keras.Model, rows: np.ndarray) -> tuple[float, float]:
    """Loss and accuracy of a stateless model reading each row start to end."""
    x = rows[:, :-1].astype(np.int32)
    probs = model.predict(x, batch_size=len(x), verbose=0)
    return next_char_loss(probs, rows[:, 1:])
