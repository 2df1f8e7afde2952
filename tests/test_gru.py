"""FastGRU computes keras.layers.GRU's function, and trains like it."""

import keras
import numpy as np
import pytest

from charpipe import model as char_model
from charpipe.gru import FastGRU

VOCAB, BATCH, STEPS = 11, 4, 25


def _pair(stateful, rng):
    keras.utils.set_random_seed(5)
    fast = char_model.build(VOCAB, units=16, n_layers=2, dropout=0.2, recurrent_dropout=0.2,
                            batch_size=BATCH, stateful=stateful, fast=True)
    # Trained weights are not near their initial values: spread them.
    for layer in char_model.gru_layers(fast):
        for w in (layer.kernel, layer.recurrent_kernel, layer.bias):
            w.assign(rng.normal(0, 0.4, w.shape).astype("float32"))
    standard = char_model.with_batch_size(fast, BATCH, stateful=stateful)
    assert not any(isinstance(l, FastGRU) for l in standard.layers)
    return fast, standard


@pytest.mark.parametrize("stateful", [False, True])
def test_same_function_as_keras_gru_with_the_same_weights(stateful, rng):
    fast, standard = _pair(stateful, rng)
    x = rng.integers(0, VOCAB, (BATCH, STEPS)).astype("int32")
    for _ in range(2 if stateful else 1):  # a second call starts from carried state
        expected = keras.ops.convert_to_numpy(standard(x, training=False))
        got = keras.ops.convert_to_numpy(fast(x, training=False))
        assert np.max(np.abs(got - expected)) <= 1e-5
    if stateful:
        for a, b in zip(char_model.states(fast), char_model.states(standard)):
            assert np.max(np.abs(a - b)) <= 1e-5


def test_dropout_is_drawn_per_gate_and_only_in_training(rng):
    fast, _ = _pair(False, rng)
    x = rng.integers(0, VOCAB, (BATCH, STEPS)).astype("int32")
    a, b = (keras.ops.convert_to_numpy(fast(x, training=True)) for _ in range(2))
    assert not np.allclose(a, b), "dropout masks are drawn afresh for each batch"
    c, d = (keras.ops.convert_to_numpy(fast(x, training=False)) for _ in range(2))
    assert np.array_equal(c, d)


def test_a_trained_fast_model_is_saved_as_a_standard_keras_model(tmp_path, rng):
    from charpipe import training

    windows = rng.integers(0, VOCAB, (4, BATCH, STEPS + 1)).astype(np.uint8)
    val_rows = rng.integers(0, VOCAB, (BATCH, 30))
    params = {"units": 8, "n_layers": 2, "dropout": 0.2, "recurrent_dropout": 0.2,
              "learning_rate": 0.01, "epochs": 1, "seed": 3}
    model, history = training.train(windows, val_rows, VOCAB, params, tmp_path / "w")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True,
                                     custom_objects={}, compile=False)
    assert [type(l) for l in char_model.gru_layers(loaded)] == [keras.layers.GRU] * 2
    stateless = char_model.to_stateless(loaded)
    loss, _ = char_model.heldout_loss(stateless, val_rows)
    assert abs(loss - history[-1]["val_loss"]) <= 1e-5
