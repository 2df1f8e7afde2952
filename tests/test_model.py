"""The Keras 3 behaviour charpipe relies on, checked on small real models."""

import keras
import numpy as np
import pytest

from charpipe import model as char_model
from charpipe import training

VOCAB, BATCH, STEPS = 11, 4, 12


def small(stateful=True, batch_size=BATCH, dropout=0.0):
    keras.utils.set_random_seed(1)
    return char_model.build(VOCAB, units=16, n_layers=2, dropout=dropout,
                            recurrent_dropout=dropout, batch_size=batch_size,
                            stateful=stateful)


def test_stateless_copy_computes_the_same_function(rng):
    stateful = small(dropout=0.2)
    stateless = char_model.to_stateless(stateful)
    x = rng.integers(0, VOCAB, (BATCH, STEPS)).astype("int32")
    char_model.reset_states(stateful)
    expected = stateful.predict(x, batch_size=BATCH, verbose=0)
    got = stateless.predict(x, verbose=0)
    assert np.max(np.abs(expected - got)) <= 1e-5
    # ...and takes any batch size, which the stateful model refuses.
    assert stateless.predict(x[:3], verbose=0).shape == (3, STEPS, VOCAB)
    with pytest.raises(Exception):
        stateful.predict(x[:3], batch_size=3, verbose=0)


def test_carried_state_equals_reading_the_stream_whole(rng):
    stateful, x = small(), rng.integers(0, VOCAB, (BATCH, 3 * STEPS)).astype("int32")
    stateless = char_model.to_stateless(stateful)
    char_model.reset_states(stateful)
    parts = [stateful.predict(x[:, i : i + STEPS], batch_size=BATCH, verbose=0)
             for i in range(0, 3 * STEPS, STEPS)]
    whole = stateless.predict(x, verbose=0)
    assert np.allclose(np.concatenate(parts, axis=1), whole, atol=1e-5)


def test_dense_maps_every_time_step_alike(rng):
    # The book's TimeDistributed(Dense) is replaced by Dense on 3-D input.
    dense = keras.layers.Dense(5)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    whole = keras.ops.convert_to_numpy(dense(x))
    steps = [keras.ops.convert_to_numpy(dense(x[:, t])) for t in range(7)]
    assert np.allclose(whole, np.stack(steps, axis=1), atol=1e-6)


def test_input_is_exactly_one_hot():
    model = small(stateful=False, batch_size=None)
    table = keras.ops.convert_to_numpy(model.get_layer("one_hot").embeddings)
    assert np.array_equal(table, np.eye(VOCAB))
    assert not model.get_layer("one_hot").trainable


class StateProbe(keras.callbacks.Callback):
    """Records the first GRU's state around every batch."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.begin[self.epoch, batch] = char_model.states(self.model)[0].copy()

    def on_train_batch_end(self, batch, logs=None):
        self.end[self.epoch, batch] = char_model.states(self.model)[0].copy()


def test_states_reset_each_epoch_and_carry_between_batches(tmp_path, rng):
    windows = rng.integers(0, VOCAB, (5, BATCH, STEPS + 1)).astype(np.uint8)
    val_rows = rng.integers(0, VOCAB, (BATCH, 40))
    params = {"units": 8, "n_layers": 2, "dropout": 0.2, "recurrent_dropout": 0.2,
              "learning_rate": 0.01, "epochs": 3, "seed": 3}
    probe = StateProbe()
    _, history = training.train(windows, val_rows, VOCAB, params, tmp_path / "work",
                                callbacks=(probe,))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for epoch in range(3):
        assert not probe.begin[epoch, 0].any(), "state not reset at epoch start"
        for batch in range(1, 5):
            carried = probe.begin[epoch, batch]
            assert carried.any()
            assert np.array_equal(carried, probe.end[epoch, batch - 1])
    assert probe.end[0, 4].any()  # the state at an epoch's end was not zero


def test_training_resumes_from_its_checkpoint(tmp_path, rng):
    windows = rng.integers(0, VOCAB, (3, BATCH, STEPS + 1)).astype(np.uint8)
    val_rows = rng.integers(0, VOCAB, (BATCH, 30))
    params = {"units": 8, "n_layers": 1, "dropout": 0.0, "recurrent_dropout": 0.0,
              "learning_rate": 0.01, "epochs": 2, "seed": 3}
    work = tmp_path / "work"
    training.train(windows, val_rows, VOCAB, params, work)
    _, history = training.train(windows, val_rows, VOCAB, {**params, "epochs": 3}, work)
    assert [row["epoch"] for row in history] == [1, 2, 3]


def test_a_diverging_loss_stops_training_with_its_epoch(tmp_path, rng):
    windows = rng.integers(0, VOCAB, (3, BATCH, STEPS + 1)).astype(np.uint8)
    params = {"units": 8, "n_layers": 1, "dropout": 0.0, "recurrent_dropout": 0.0,
              "learning_rate": float("inf"), "epochs": 2, "seed": 3}
    with pytest.raises(training.TrainingError, match="epoch 1"):
        training.train(windows, windows[0], VOCAB, params, tmp_path / "work")
    assert not (tmp_path / "work" / training.CHECKPOINT).exists()


def test_saved_model_loads_in_safe_mode_and_foreign_files_are_refused(tmp_path):
    model = small(stateful=False, batch_size=None)
    model.save(tmp_path / "m.keras")
    assert char_model.hyperparameters(char_model.load(tmp_path / "m.keras"))["units"] == 16
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(char_model.ModelError, match="junk.keras"):
        char_model.load(tmp_path / "junk.keras")
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(char_model.ModelError, match="not a charpipe char-RNN"):
        char_model.load(tmp_path / "other.keras")
