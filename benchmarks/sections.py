"""The benchmark's sections; each takes the parsed options and returns figures.

Within a section charpipe and the baseline run alternately, repeat after
repeat, so a change of load on shared cores falls on both sides alike.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import figure

BATCH_SIZE, N_STEPS = 32, 100
TRAIN_PARAMS = {"units": 128, "n_layers": 2, "dropout": 0.2, "recurrent_dropout": 0.2,
                "learning_rate": 0.001, "epochs": 1}
PROMPT = "the "


def _text(args) -> str:
    text = args.corpus.read_text(encoding="utf-8")
    return text[:400_000] if args.quick else text


# --- training ---------------------------------------------------------------

def _batch_timer(warmup: int):
    import keras

    class BatchTimer(keras.callbacks.Callback):
        """Batch end times and the epoch's running loss, as Keras reports it."""

        def __init__(self):
            super().__init__()
            self.ends, self.loss = [], None

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())
            self.loss = float(logs["loss"])

        def chars_per_s(self) -> float:
            timed = len(self.ends) - warmup
            return timed * BATCH_SIZE * N_STEPS / (self.ends[-1] - self.ends[warmup - 1])

    return BatchTimer()


def train(args) -> list[dict]:
    import keras
    import numpy as np

    from benchmarks import baseline
    from charpipe import encoding, sharding, training

    ids, char_to_id = baseline.encode(_text(args))
    vocab_size = len(char_to_id)
    train_ids, val_ids = ids[: len(ids) * 90 // 100], ids[len(ids) * 90 // 100 :]
    warmup = 2 if args.quick else args.warmup_batches
    timed = args.train_batches or (3 if args.quick else None)
    full = sharding.plan(len(train_ids), BATCH_SIZE, N_STEPS).n_batches
    n_batches = min(full, warmup + timed) if timed else full
    # Both sides read exactly these ids: BATCH_SIZE streams of n_batches windows.
    used = train_ids[: BATCH_SIZE * (n_batches * N_STEPS + 1)]
    windows, _ = sharding.windows(used, sharding.plan(len(used), BATCH_SIZE, N_STEPS))
    val_rows = sharding.streams(val_ids[: BATCH_SIZE * (N_STEPS + 1)], BATCH_SIZE)

    rates = {"charpipe": [], "baseline": []}
    losses = {"charpipe": [], "baseline": []}
    for repeat in range(args.repeats):
        seed = 42 + repeat  # a new seed per repeat shows the run-to-run spread
        timer = _batch_timer(warmup)
        keras.utils.set_random_seed(seed)
        baseline.train(used, vocab_size, BATCH_SIZE, N_STEPS, [timer])
        rates["baseline"].append(timer.chars_per_s())
        losses["baseline"].append(timer.loss)
        keras.backend.clear_session()

        timer = _batch_timer(warmup)
        with tempfile.TemporaryDirectory(prefix="charpipe-bench-") as work:
            training.train(windows, val_rows, vocab_size, {**TRAIN_PARAMS, "seed": seed},
                           Path(work), callbacks=(timer,))
        rates["charpipe"].append(timer.chars_per_s())
        losses["charpipe"].append(timer.loss)
        keras.backend.clear_session()

    what = (f"{n_batches - warmup} batches of {BATCH_SIZE} x {N_STEPS} timed after "
            f"{warmup} of warm-up" + (" (one whole epoch)" if n_batches == full else ""))
    speed = figure("training", "chars/s", "higher", rates["charpipe"], rates["baseline"],
                   note=what, target=">= 1.5x")
    speed["met"] = speed["ratio"] >= 1.5
    loss = figure("training loss after the timed batches", "nats/char", "equal",
                  losses["charpipe"], losses["baseline"],
                  note=f"seeds 42..{41 + args.repeats}, one per repeat; spread "
                       f"charpipe {np.ptp(losses['charpipe']):.4f}, baseline "
                       f"{np.ptp(losses['baseline']):.4f}")
    return [speed, loss]


# --- generation ---------------------------------------------------------------

def generate(args) -> list[dict]:
    import keras
    import numpy as np

    from benchmarks import baseline
    from charpipe import model as char_model
    from charpipe import sampling

    vocab_size = 39
    keras.utils.set_random_seed(42)
    net = char_model.build(vocab_size)
    # The same weights in the book's model, which takes one-hot input.
    book = baseline.build(vocab_size, None, stateful=False)
    book.set_weights(net.get_weights()[1:])
    prompt = np.array([1, 2, 3, 0], dtype=np.int32)
    n_ours = 100 if args.quick else args.gen_chars
    n_book = 3 if args.quick else args.baseline_gen_chars

    def ours(n_samples: int) -> float:
        started = time.perf_counter()
        sampling.Sampler(net, n_samples).generate(prompt, n_ours, 1.0, seed=0)
        return time.perf_counter() - started

    def theirs(n_samples: int) -> float:
        started = time.perf_counter()
        baseline.complete(book, np.tile(prompt, (n_samples, 1)), n_book)
        return time.perf_counter() - started

    ours(1), theirs(1)  # trace and warm both once
    seconds = {k: [] for k in ("ours1", "ours64", "book1", "book64")}
    for _ in range(args.repeats):
        seconds["book1"].append(theirs(1))
        seconds["ours1"].append(ours(1))
        seconds["book64"].append(theirs(64))
        seconds["ours64"].append(ours(64))

    def rate(key, n_chars, n_samples):
        return [n_chars * n_samples / s for s in seconds[key]]

    book_note = (f"baseline timed over its first {n_book} characters; it slows as the "
                 "text grows, so its rate over 1,000 would be lower still")
    one = figure(f"generation, 1 sample of {n_ours}", "chars/s", "higher",
                 rate("ours1", n_ours, 1), rate("book1", n_book, 1), note=book_note,
                 target=">= 5,000 chars/s and >= 100x")
    one["met"] = one["charpipe"]["median"] >= 5000 and one["ratio"] >= 100
    many = figure(f"generation, 64 samples of {n_ours}", "chars/s", "higher",
                  rate("ours64", n_ours, 64), rate("book64", n_book, 64))
    spread = [b / a for a, b in zip(seconds["ours1"], seconds["ours64"])]
    cost = figure("time of 64 samples / time of 1", "x", "lower", spread, None,
                  target="< 5x")
    cost["met"] = cost["charpipe"]["median"] < 5
    return [one, many, cost]
