"""The benchmark's sections; each takes the parsed options and returns figures.

Within a section charpipe and the baseline run alternately, repeat after
repeat, so a change of load on shared cores falls on both sides alike.
"""

import json
import statistics
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

    # --quick only checks that everything runs: a smaller model compiles faster.
    units = 32 if args.quick else TRAIN_PARAMS["units"]
    rates = {"charpipe": [], "baseline": []}
    losses = {"charpipe": [], "baseline": []}
    for repeat in range(args.repeats):
        seed = 42 + repeat  # a new seed per repeat shows the run-to-run spread
        timer = _batch_timer(warmup)
        keras.utils.set_random_seed(seed)
        baseline.train(used, vocab_size, BATCH_SIZE, N_STEPS, [timer], units=units)
        rates["baseline"].append(timer.chars_per_s())
        losses["baseline"].append(timer.loss)
        keras.backend.clear_session()

        timer = _batch_timer(warmup)
        with tempfile.TemporaryDirectory(prefix="charpipe-bench-") as work:
            training.train(windows, val_rows, vocab_size,
                           {**TRAIN_PARAMS, "units": units, "seed": seed}, Path(work),
                           callbacks=(timer,))
        rates["charpipe"].append(timer.chars_per_s())
        losses["charpipe"].append(timer.loss)
        keras.backend.clear_session()

    what = (f"GRU({units}) x 2; {n_batches - warmup} batches of {BATCH_SIZE} x {N_STEPS} "
            f"timed after "
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


# --- data preparation ---------------------------------------------------------

def _prep(side: str, corpus: Path, work: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks.dataprep", side, str(corpus),
                           str(work)], capture_output=True, text=True, cwd=_REPO)
    if done.returncode:
        raise RuntimeError(f"data preparation ({side}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def data(args) -> list[dict]:
    from benchmarks.dataprep import generate_corpus

    runs = {"charpipe": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="charpipe-bench-data-") as tmp:
        tiny = Path(tmp) / "tiny.txt"
        tiny.write_text(_text(args), encoding="utf-8")
        for repeat in range(args.repeats):
            for side in ("baseline", "charpipe"):
                runs[side].append(_prep(side, tiny, Path(tmp) / f"{side}-{repeat}"))
        big_mb = 5 if args.quick else args.big_mb
        big = Path(tmp) / "big.txt"
        generate_corpus(big, big_mb, args.corpus)
        big_runs = [_prep("charpipe", big, Path(tmp) / f"big-{r}")
                    for r in range(1 if big_mb >= 500 else args.repeats)]

    def mb_s(rs, key):
        return [r["bytes"] / r[key] / 1e6 for r in rs]

    size = f"{runs['charpipe'][0]['bytes'] / 1e6:.1f} MB"
    big_size = f"{big_runs[0]['bytes'] / 1e6:,.0f} MB"
    rows = [
        figure(f"encode, tiny Shakespeare ({size})", "MB/s", "higher",
               mb_s(runs["charpipe"], "encode_s"), mb_s(runs["baseline"], "encode_s")),
        figure(f"shard, tiny Shakespeare ({size})", "MB/s", "higher",
               mb_s(runs["charpipe"], "shard_s"), mb_s(runs["baseline"], "shard_s"),
               note="baseline: one pass over its tf.data window/flat_map/zip batches"),
        figure("peak memory, tiny Shakespeare", "MB", "lower",
               [r["peak_rss_mb"] for r in runs["charpipe"]],
               [r["peak_rss_mb"] for r in runs["baseline"]],
               note="whole process: interpreter and libraries included"),
    ]
    encode = figure(f"encode, generated corpus ({big_size})", "MB/s", "higher",
                    mb_s(big_runs, "encode_s"), None, target=">= 100 MB/s",
                    note="baseline not run: it holds the whole text as a string")
    encode["met"] = encode["charpipe"]["median"] >= 100
    shard = figure(f"shard, generated corpus ({big_size})", "MB/s", "higher",
                   mb_s(big_runs, "shard_s"), None)
    peak = figure(f"peak memory, encode + shard of {big_size}", "MB", "lower",
                  [r["peak_rss_mb"] for r in big_runs], None, target="< 1,024 MB")
    peak["met"] = peak["charpipe"]["median"] < 1024
    return rows + [encode, shard, peak]


# --- orchestration ------------------------------------------------------------

_REPO = Path(__file__).resolve().parents[1]


def _timed(command: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=_REPO)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, done


def _start_server(env: dict, port: int):
    import urllib.request

    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=_REPO)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("the Prefect server did not answer within 120 s")


def orchestration(args) -> list[dict]:
    import socket

    with tempfile.TemporaryDirectory(prefix="charpipe-bench-orch-") as tmp:
        env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / "prefect"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("PREFECT_API_URL", None)
        run = [sys.executable, "-m", "charpipe.cli", "run", "--preset", "smoke",
               "--source", str(args.corpus), "--artifacts", str(Path(tmp) / "artifacts")]
        if args.quick:
            run += ["--max-chars", "20000", "--epochs", "1", "--units", "8"]
        trivial = [sys.executable, "-m", "benchmarks.trivial_flow"]

        smoke, _ = _timed(run, env)  # fills every cache
        _, traced = _timed([sys.executable, "-X", "importtime", *run[1:]], env)
        imports_tf = any(" tensorflow" in line for line in traced.stderr.splitlines()
                         if line.startswith("import time:"))
        cached, floor = [], []
        for _ in range(args.repeats):
            floor.append(_timed(trivial, env)[0])
            cached.append(_timed(run, env)[0])

        served_cached, served_floor = [], []
        if not args.quick:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            server = _start_server(env, port)
            try:
                served = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
                for _ in range(args.repeats):
                    served_floor.append(_timed(trivial, served)[0])
                    served_cached.append(_timed(run, served)[0])
            finally:
                server.terminate()
                server.wait(timeout=30)

    rows = []
    embedded = figure("fully cached `charpipe run`, embedded server", "s", "lower",
                      cached, floor, baseline="one-task Prefect flow",
                      target="<= floor + 3 s",
                      note=f"TensorFlow imported: {'yes' if imports_tf else 'no'}")
    gap = embedded["charpipe"]["median"] - embedded["reference"]["median"]
    embedded["gap_s"], embedded["met"] = gap, gap <= 3 and not imports_tf
    embedded["imports_tensorflow"] = imports_tf
    rows.append(embedded)
    if served_cached:
        row = figure("fully cached `charpipe run`, running server", "s", "lower",
                     served_cached, served_floor, baseline="one-task Prefect flow",
                     target="< 5 s")
        row["met"] = row["charpipe"]["median"] < 5
        rows.append(row)
    share = figure("smoke run from scratch", "s", "lower", [smoke], None,
                   note=f"a one-task flow takes {statistics.median(floor):.1f} s of it "
                        f"({statistics.median(floor) / smoke:.0%}): Prefect's start-up")
    rows.append(share)
    return rows
