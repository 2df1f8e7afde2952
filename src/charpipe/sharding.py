"""Contiguous batches for a stateful RNN.

A stateful layer carries its state from slot i of one batch to slot i of the
next, so slot i must continue the text exactly where it stopped. The ids are
cut into `batch_size` equal streams, and batch k holds the window
`stream[k * n_steps : k * n_steps + n_steps + 1]` of every stream: the last
id of one window is the first of the next. Shuffling would break that, so
nothing here ever shuffles.
"""

import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from charpipe.errors import CharpipeError

TRAIN_FILE = "train.parquet"


class ShardError(CharpipeError, ValueError):
    """The text is too short for the requested batches, or a shard is broken."""


@dataclass(frozen=True)
class Layout:
    batch_size: int
    n_steps: int
    n_batches: int
    stream_length: int
    n_ids: int

    @property
    def dropped(self) -> int:
        """Ids no window reads: each stream's tail plus the uneven remainder."""
        used = self.batch_size * (self.n_batches * self.n_steps + 1)
        return self.n_ids - used


def plan(n_ids: int, batch_size: int, n_steps: int, part: str = "train") -> Layout:
    stream_length = n_ids // batch_size
    n_batches = (stream_length - 1) // n_steps if stream_length else 0
    if n_batches < 1:
        need = batch_size * (n_steps + 1)
        raise ShardError(
            f"the {part} text has {n_ids} characters, fewer than the "
            f"{need} needed for one batch (batch_size {batch_size} x "
            f"(n_steps {n_steps} + 1)). Use a longer corpus, or a smaller "
            "--batch-size or --n-steps.")
    return Layout(batch_size, n_steps, n_batches, stream_length, n_ids)


def windows(ids: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Return (windows, starts): shapes (n_batches, batch_size, n_steps + 1)
    and (n_batches, batch_size), starts being offsets into `ids`."""
    b, t, n = layout.batch_size, layout.n_steps, layout.n_batches
    starts = (np.arange(b) * layout.stream_length)[None, :] + (np.arange(n) * t)[:, None]
    index = starts[:, :, None] + np.arange(t + 1)[None, None, :]
    return ids[index], starts


def check_continuity(windows_: np.ndarray, starts: np.ndarray, n_steps: int) -> None:
    """Raise ShardError unless slot i of batch k+1 continues slot i of batch k."""
    if len(windows_) < 2:
        return
    if not np.array_equal(windows_[1:, :, 0], windows_[:-1, :, -1]):
        bad = np.argwhere(windows_[1:, :, 0] != windows_[:-1, :, -1])[0]
        raise ShardError(f"batch {bad[0] + 1}, slot {bad[1]} does not continue "
                         "the previous batch's window")
    if not np.all(starts[1:] - starts[:-1] == n_steps):
        raise ShardError(f"window starts do not advance by n_steps={n_steps}")


# Batches per Parquet row group: about this many ids of each stream at a time.
GROUP_IDS = 1 << 18
# Parquet stores small ints as INT32; byte-stream-split plus compression keeps
# them small and writes about twice as fast as dictionary encoding.
_ENCODING = {name: "BYTE_STREAM_SPLIT"
             for name in ("batch", "slot", "start", "window.list.element")}


def write(path: Path, ids, layout: Layout) -> None:
    """Write the windows to Parquet, one row group of batches at a time.

    `ids` is an array, or anything with `read(start, stop)` (such as
    `encoding.IdsReader`), so a corpus larger than memory is read a few
    stretches at a time: for each group of batches, one stretch per stream.
    """
    from charpipe.encoding import write_behind

    tables = _groups(ids, layout)
    first = next(tables)
    with pq.ParquetWriter(path, first.schema, use_dictionary=False,
                          column_encoding=_ENCODING) as writer:
        write_behind(writer, itertools.chain([first], tables), row_group_size=None)


def _groups(ids, layout: Layout) -> Iterator[pa.Table]:
    """One table per group of batches, each checked to continue the last."""
    read = ids.read if hasattr(ids, "read") else (lambda a, b: ids[a:b])
    b, t, n = layout.batch_size, layout.n_steps, layout.n_batches
    per_group = max(1, GROUP_IDS // t)
    meta = {b"charpipe": json.dumps(asdict(layout)).encode()}
    previous_last = None
    for first in range(0, n, per_group):
        count = min(per_group, n - first)
        base = np.arange(b) * layout.stream_length + first * t
        rows = np.stack([read(s, s + count * t + 1) for s in base])
        index = (np.arange(count) * t)[:, None] + np.arange(t + 1)[None, :]
        win = rows[:, index].transpose(1, 0, 2)  # (count, b, t + 1)
        starts = base[None, :] + (np.arange(count) * t)[:, None]
        check_continuity(win, starts, t)
        if previous_last is not None and not np.array_equal(win[0, :, 0], previous_last):
            raise ShardError(f"batch {first} does not continue batch {first - 1}")
        previous_last = win[-1, :, -1]
        yield _table(win, starts, first).replace_schema_metadata(meta)


def _table(win: np.ndarray, starts: np.ndarray, first_batch: int) -> pa.Table:
    count, b, width = win.shape
    return pa.table({
        "batch": pa.array(np.repeat(np.arange(first_batch, first_batch + count,
                                              dtype=np.uint32), b)),
        "slot": pa.array(np.tile(np.arange(b, dtype=np.uint32), count)),
        "start": pa.array(starts.reshape(-1).astype(np.uint64)),
        "window": pa.FixedSizeListArray.from_arrays(pa.array(win.reshape(-1)), width),
    })


def read_layout(path: Path) -> Layout:
    return Layout(**json.loads(pq.read_schema(path).metadata[b"charpipe"]))


def read(path: Path) -> tuple[np.ndarray, Layout]:
    """Windows of shape (n_batches, batch_size, n_steps + 1), checked again."""
    table = pq.read_table(path)
    layout = read_layout(path)
    flat = table["window"].combine_chunks().flatten().to_numpy()
    win = flat.reshape(layout.n_batches, layout.batch_size, layout.n_steps + 1)
    starts = table["start"].to_numpy().reshape(layout.n_batches, layout.batch_size)
    check_continuity(win, starts.astype(np.int64), layout.n_steps)
    return win, layout


def streams(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Held-out ids as `batch_size` equal contiguous rows, for one stateless pass."""
    length = len(ids) // batch_size
    if length < 2:
        raise ShardError(
            f"{len(ids)} held-out characters cannot fill {batch_size} streams of "
            "at least 2; use a longer corpus or larger held-out fractions.")
    return ids[: length * batch_size].reshape(batch_size, length)
