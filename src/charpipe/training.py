"""Stateful training with a state reset at every epoch and a checkpoint after it.

Within an epoch each batch continues the text of the previous one (see
`sharding`), so the GRU states are carried from batch to batch and only reset
when the text starts over, at the beginning of an epoch. After each epoch the
held-out loss is measured on a stateless twin, the model and its optimizer
state are checkpointed, and a run that was killed resumes from there.
"""

import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from charpipe.errors import CharpipeError
from charpipe import model as char_model
from charpipe.store import write_json

CHECKPOINT = "checkpoint.keras"
PROGRESS = "progress.json"

log = logging.getLogger(__name__)


class TrainingError(CharpipeError, RuntimeError):
    """Training diverged or cannot continue."""


def dataset(windows: np.ndarray) -> tf.data.Dataset:
    """One element per batch, in order: ids (B, n_steps) -> next ids (B, n_steps)."""
    x = windows[:, :, :-1].astype(np.int32)
    y = windows[:, :, 1:].astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).prefetch(2)


class ResetStatesAtEpochStart(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        char_model.reset_states(self.model)


class EpochEnd(keras.callbacks.Callback):
    """Held-out loss, divergence check, checkpoint and one log line per epoch."""

    def __init__(self, val_rows, workdir: Path, history: list, epochs: int,
                 logger, on_epoch=None):
        super().__init__()
        self.val_rows, self.workdir, self.history = val_rows, workdir, history
        self.epochs, self.logger, self.on_epoch = epochs, logger, on_epoch
        self.started = time.perf_counter()
        self.twin = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            self.model.stop_training = True
            raise TrainingError(
                f"training loss became {loss} in epoch {epoch + 1}; the model "
                "was not saved. Lower --learning-rate or check the corpus.")
        if self.twin is None:
            self.twin = char_model.to_stateless(self.model)
        char_model.copy_weights(self.model, self.twin)
        val_loss, val_accuracy = char_model.heldout_loss(self.twin, self.val_rows)
        row = {"epoch": epoch + 1, "loss": round(loss, 6),
               "val_loss": round(val_loss, 6), "val_accuracy": round(val_accuracy, 6),
               "seconds": round(seconds, 3)}
        self.history.append(row)
        save_checkpoint(self.model, self.history, self.workdir)
        self.logger.info(
            "epoch %d/%d  loss %.4f  val_loss %.4f  (%.3f bits/char)  %.1f s",
            epoch + 1, self.epochs, loss, val_loss, val_loss / math.log(2), seconds)
        if self.on_epoch:
            self.on_epoch(row)


def save_checkpoint(model: keras.Model, history: list, workdir: Path) -> None:
    # Written aside and renamed, so a kill mid-save leaves the previous one.
    scratch = workdir / f".{CHECKPOINT}.{os.getpid()}.tmp.keras"
    model.save(scratch)
    os.replace(scratch, workdir / CHECKPOINT)
    write_json(workdir / PROGRESS, {"epochs_done": len(history), "history": history})


def resume_point(workdir: Path, logger) -> tuple[keras.Model | None, list]:
    """The last checkpointed model and its history, if a previous run left one."""
    progress, checkpoint = workdir / PROGRESS, workdir / CHECKPOINT
    if not (progress.exists() and checkpoint.exists()):
        return None, []
    try:
        history = json.loads(progress.read_text())["history"]
        model = keras.saving.load_model(checkpoint, safe_mode=True)
    except Exception as exc:  # a damaged checkpoint only costs the lost epochs
        logger.warning("ignoring unusable checkpoint in %s: %s", workdir, exc)
        return None, []
    logger.info("resuming after epoch %d from %s", len(history), checkpoint)
    return model, history


def start_from(model: keras.Model, folder: Path, logger) -> None:
    """Copy a stored model's weights into `model` (same vocabulary and layers)."""
    source = char_model.load(folder / "model.keras")
    try:
        # By layer name: the stored model has Keras GRUs where this one has
        # FastGRUs with the same weights.
        char_model.copy_weights(source, model)
    except ValueError as exc:
        raise TrainingError(
            f"cannot warm-start from {folder}: its layers differ from this run's "
            f"({exc}); train from scratch (warm_start false) or match its "
            "--units/--n-layers") from exc
    logger.info("warm start: weights from %s", folder)


def train(windows: np.ndarray, val_rows: np.ndarray, vocab_size: int, params: dict,
          workdir: Path, logger=log, on_epoch=None,
          callbacks: tuple = ()) -> tuple[keras.Model, list]:
    """Train the stateful model on contiguous windows; return it and its history.

    Training runs on `FastGRU` layers; the model returned is the standard
    Keras one with the trained weights. `callbacks` run after charpipe's
    own, so they see states already reset.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(params["seed"])
    batch_size = windows.shape[1]
    model, history = resume_point(workdir, logger)
    if model is None:
        model = char_model.build(
            vocab_size, params["units"], params["n_layers"], params["dropout"],
            params["recurrent_dropout"], batch_size=batch_size, stateful=True,
            fast=True)
        if params.get("warm_start"):
            start_from(model, Path(params["warm_start"]), logger)
        # XLA compiles FastGRU's loop into few kernels: 1.6-1.9x the batches per
        # second of keras.layers.GRU on two CPU cores (see benchmarks/).
        char_model.compile_for_training(model, params["learning_rate"], jit_compile=True)

    epochs = params["epochs"]
    if len(history) < epochs:
        ours = [ResetStatesAtEpochStart(),
                EpochEnd(val_rows, workdir, history, epochs, logger, on_epoch)]
        model.fit(dataset(windows), epochs=epochs, initial_epoch=len(history),
                  shuffle=False, callbacks=ours + list(callbacks),
                  verbose=1 if sys.stdout.isatty() else 0)
    # What is saved is the standard Keras model, loadable without charpipe.
    standard = char_model.with_batch_size(model, batch_size, stateful=True)
    return standard, history[:epochs]
