"""Data preparation timed in a process of its own, so its peak memory is its own.

    python -m benchmarks.dataprep {charpipe,baseline} CORPUS WORKDIR

prints one JSON object: seconds to encode and to shard, the corpus's bytes
and the process's peak resident memory.
"""

import json
import random
import resource
import sys
import time
from pathlib import Path

BATCH_SIZE, N_STEPS = 32, 100


def generate_corpus(path: Path, size_mb: int, source: Path, seed: int = 0) -> int:
    """At least `size_mb` MB of text: the source's lines, shuffled copy after copy."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    rng, written = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_mb * 1_000_000:
            rng.shuffle(lines)
            block = "".join(lines)
            f.write(block)
            written += len(block.encode("utf-8"))
    return written


def charpipe(corpus: Path, work: Path) -> dict:
    from charpipe import encoding, sharding

    started = time.perf_counter()
    meta = encoding.write_file(work, corpus, "0" * 64, 0.05, 0.05, lowercase=True)
    encoded = time.perf_counter()
    layout = sharding.plan(meta["splits"]["train"], BATCH_SIZE, N_STEPS)
    ids = encoding.IdsReader(work, keep=2 * BATCH_SIZE + 2)
    sharding.write(work / sharding.TRAIN_FILE, ids, layout)
    return {"encode_s": encoded - started, "shard_s": time.perf_counter() - encoded}


def baseline(corpus: Path, work: Path) -> dict:
    import tensorflow as tf  # imported before the clock starts

    from benchmarks import baseline as book

    started = time.perf_counter()
    ids, char_to_id = book.encode(corpus.read_text(encoding="utf-8"))
    encoded = time.perf_counter()
    train = ids[: len(ids) * 90 // 100]
    n_batches = sum(1 for _ in book.dataset(train, BATCH_SIZE, N_STEPS, len(char_to_id)))
    assert n_batches > 0 and tf.executing_eagerly()
    return {"encode_s": encoded - started, "shard_s": time.perf_counter() - encoded}


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ru_maxrss keeps the peak of
    the parent a process was forked from (the benchmark, with TensorFlow
    loaded), so VmHWM, which starts afresh at exec, is read where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    side, corpus, work = argv[0], Path(argv[1]), Path(argv[2])
    work.mkdir(parents=True, exist_ok=True)
    result = {"charpipe": charpipe, "baseline": baseline}[side](corpus, work)
    result["bytes"] = corpus.stat().st_size
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
