"""Characters to ids and back, stored as Parquet.

The vocabulary is the set of characters of the (lower-cased) text, ranked by
frequency, ties broken by first appearance: the ids the book's Keras Tokenizer
gave. Ids are stored in the narrowest unsigned type that holds them, with the
corpus hash and split sizes in the file's metadata.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from charpipe.errors import CharpipeError

IDS_FILE = "ids.parquet"
VOCAB_FILE = "vocab.parquet"


class EncodingError(CharpipeError, ValueError):
    """The text cannot be encoded, or ids do not fit the vocabulary."""


@dataclass(frozen=True)
class Splits:
    train: int
    val: int
    test: int

    @classmethod
    def of(cls, n: int, val_fraction: float, test_fraction: float) -> "Splits":
        # Train first, then validation, then test, each a contiguous block, so
        # held-out text is text the model never read, not shuffled neighbours.
        val, test = int(n * val_fraction), int(n * test_fraction)
        return cls(train=n - val - test, val=val, test=test)

    def bounds(self, part: str) -> slice:
        starts = {"train": 0, "val": self.train, "test": self.train + self.val}
        return slice(starts[part], starts[part] + getattr(self, part))


# Text is read in pieces of about this many bytes: memory stays flat whatever
# the corpus's size.
CHUNK_BYTES = 1 << 24
# Ids are written in Parquet row groups of this many rows, so a range of ids
# can be read back without decompressing the whole file.
ROW_GROUP = 1 << 18


def _complete_prefix(data: bytes) -> int:
    """Length of the longest prefix of `data` that ends on a whole UTF-8 character."""
    i = len(data) - 1
    while i >= max(0, len(data) - 4) and data[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0 or data[i] < 0x80:
        return len(data)
    lead = data[i]
    need = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
    return i if len(data) - i < need else len(data)


def _decode(data: bytes, offset: int, path: str, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise EncodingError(
            f"{path} is not UTF-8 text: byte {offset + exc.start} is "
            f"0x{data[exc.start]:02x}. Convert it to UTF-8, or pass --decode-errors "
            "replace to read such bytes as U+FFFD.") from exc


_BOM = b"\xef\xbb\xbf"


def _check_text(piece: bytes, offset: int, path: str) -> None:
    nul = piece.find(b"\x00")
    if nul >= 0:
        raise EncodingError(
            f"{path} looks binary: it has a NUL byte at offset {offset + nul}. "
            "charpipe trains on UTF-8 text; convert the file (UTF-16 text also has "
            "NUL bytes) or point --source at another one.")


def _pieces(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(piece, its byte offset): the file in pieces of about `chunk_bytes`.

    Each piece ends after a line break or a space. Those bytes never occur
    inside a multi-byte UTF-8 character, and `str.lower` looks at a letter's
    neighbours up to the next space (a final sigma lower-cases differently),
    so lower-casing piece by piece gives the text that lower-casing it whole
    would. A stretch of 4 x `chunk_bytes` without either is cut where it
    stands, between two characters.
    """
    pending, offset = b"", 0
    with open(path, "rb") as f:
        while raw := f.read(chunk_bytes):
            data = pending + raw
            cut = max(data.rfind(b"\n"), data.rfind(b" ")) + 1
            if cut == 0:
                if len(data) < 4 * chunk_bytes:
                    pending = data
                    continue
                cut = _complete_prefix(data) or len(data)
                if data[cut - 1 : cut] == b"\r" and cut > 1:
                    cut -= 1  # keep a "\r\n" whole, for the newline rule below
            yield data[:cut], offset
            pending, offset = data[cut:], offset + cut
    if pending:
        yield pending, offset


def point_chunks(path: Path, lowercase: bool = True, max_chars: int | None = None,
                 chunk_bytes: int = CHUNK_BYTES, decode_errors: str = "strict",
                 name: str | None = None) -> Iterator[np.ndarray]:
    """The file's text as arrays of code points, one piece at a time.

    A byte-order mark is dropped and Windows line endings become "\\n", so a
    corpus saved on Windows encodes as the same text saved elsewhere. A NUL
    byte means a binary file and is refused; bytes that are not UTF-8 are
    refused with their offset, or read as U+FFFD with `decode_errors="replace"`.
    ASCII pieces, most of a typical corpus, skip decoding: their bytes are
    their code points, and `bytes.lower` is `str.lower` on them.
    """
    remaining, name = max_chars, name or str(path)  # `name`: the file in messages
    for piece, offset in _pieces(Path(path), chunk_bytes):
        _check_text(piece, offset, name)
        if offset == 0 and piece.startswith(_BOM):
            piece, offset = piece[len(_BOM):], len(_BOM)
        if piece.isascii():
            piece = piece.replace(b"\r\n", b"\n")
            piece = piece if remaining is None else piece[:remaining]
            count = len(piece)
            points = np.frombuffer(piece.lower() if lowercase else piece, np.uint8)
        else:
            text = _decode(piece, offset, name, decode_errors).replace("\r\n", "\n")
            text = text if remaining is None else text[:remaining]
            count = len(text)
            points = _lower(text) if lowercase else code_points(text)
        if len(points):
            yield points
        if remaining is not None:
            remaining -= count
            if remaining <= 0:
                return


# The only characters whose lower case is not one character of its own:
# U+0130 lower-cases to two, and a capital sigma depends on its neighbours.
_CONTEXTUAL = (0x130, 0x3A3)


def _lower(text: str) -> np.ndarray:
    """Code points of `text.lower()`, mapped one character at a time when that
    is the same thing (about three times as fast as `str.lower` here)."""
    points = code_points(text)
    chars = np.flatnonzero(np.bincount(points))
    if np.isin(_CONTEXTUAL, chars).any():
        return code_points(text.lower())
    lower = np.arange(int(chars[-1]) + 1, dtype=np.uint32)
    lower[chars] = [ord(chr(c).lower()) for c in chars]
    return lower[points]


def text_chunks(path: Path, lowercase: bool = True, max_chars: int | None = None,
                chunk_bytes: int = CHUNK_BYTES,
                decode_errors: str = "strict") -> Iterator[str]:
    """`point_chunks` as text."""
    for points in point_chunks(path, lowercase, max_chars, chunk_bytes, decode_errors):
        yield points.astype(np.uint32).tobytes().decode("utf-32-le")


def read_text(path: Path, lowercase: bool = True, max_chars: int | None = None,
              decode_errors: str = "strict") -> str:
    return "".join(text_chunks(path, lowercase, max_chars, decode_errors=decode_errors))


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def build_vocab(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (chars as code points ranked by frequency, their counts)."""
    return count_chars([points])[:2]


def count_chars(pieces: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """(chars ranked by frequency, ties by first appearance; counts; length)
    of the code points in `pieces`, read one piece at a time."""
    counts = np.zeros(0, dtype=np.int64)
    first = np.zeros(0, dtype=np.int64)
    offset = 0
    for points in pieces:
        piece = np.bincount(points)
        if len(piece) > len(counts):
            counts = np.pad(counts, (0, len(piece) - len(counts)))
            first = np.pad(first, (0, len(piece) - len(first)), constant_values=-1)
        present = np.flatnonzero(piece)
        new = present[counts[present] == 0]
        if len(new):
            first[new] = offset + _first_positions(points, new)
        counts[: len(piece)] += piece
        offset += len(points)
    chars = np.flatnonzero(counts)
    order = np.lexsort((first[chars], -counts[chars]))
    return chars[order].astype(np.uint32), counts[chars][order], offset


def _first_positions(points: np.ndarray, chars: np.ndarray) -> np.ndarray:
    """Where each of `chars` (sorted, all present) first occurs in `points`.

    Windows of doubling size from the start: new characters usually appear
    early, so this rarely sorts more than a small prefix.
    """
    found = np.full(len(chars), -1, dtype=np.int64)
    start, size = 0, 4096
    while (found < 0).any():
        window = points[start : start + size]
        seen, at = np.unique(window, return_index=True)
        slot = np.searchsorted(chars, seen)
        hit = (slot < len(chars)) & (chars[np.minimum(slot, len(chars) - 1)] == seen)
        fresh = hit.copy()
        fresh[hit] = found[slot[hit]] < 0
        found[slot[fresh]] = start + at[fresh]
        start, size = start + size, size * 2
    return found


def id_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise EncodingError(f"vocabulary of {vocab_size} characters is too large")


def lookup_table(vocab: np.ndarray) -> np.ndarray:
    """Code point -> id, as an array indexed by code point."""
    lookup = np.zeros(int(vocab.max()) + 1, dtype=id_dtype(len(vocab)))
    lookup[vocab] = np.arange(len(vocab), dtype=lookup.dtype)
    return lookup


def encode(points: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    return lookup_table(vocab)[points]


def decode(ids: np.ndarray, vocab: list[str]) -> str:
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    return table[np.asarray(ids, dtype=np.int64)].tobytes().decode("utf-32-le")


def write(folder: Path, text: str, corpus_sha256: str, val_fraction: float,
          test_fraction: float, lowercase: bool) -> dict:
    """Encode `text` into FOLDER/ids.parquet and FOLDER/vocab.parquet."""
    return write_chunks(folder, lambda: iter([code_points(text)]), corpus_sha256,
                        val_fraction, test_fraction, lowercase)


def write_file(folder: Path, path: Path, corpus_sha256: str, val_fraction: float,
               test_fraction: float, lowercase: bool, max_chars: int | None = None,
               decode_errors: str = "strict", chunk_bytes: int = CHUNK_BYTES,
               name: str | None = None) -> dict:
    """Encode the text file at `path`, reading it twice, a piece at a time.

    `name` stands for the file in error messages (where it came from).
    """
    return write_chunks(
        folder, lambda: point_chunks(path, lowercase, max_chars, chunk_bytes,
                                     decode_errors, name),
        corpus_sha256, val_fraction, test_fraction, lowercase)


def write_chunks(folder: Path, chunks: Callable[[], Iterator[np.ndarray]],
                 corpus_sha256: str,
                 val_fraction: float, test_fraction: float, lowercase: bool) -> dict:
    """Encode the code points `chunks()` yields piece by piece; it is called twice.

    The first pass ranks the characters, the second writes their ids, so the
    text is never whole in memory (as a string it would take up to 4 bytes a
    character, and as code points 4 more).
    """
    vocab, counts, n_chars = count_chars(chunks())
    if not n_chars:
        raise EncodingError("the corpus is empty: there is nothing to train on")
    splits = Splits.of(n_chars, val_fraction, test_fraction)
    meta = {
        "corpus_sha256": corpus_sha256, "vocab_size": len(vocab),
        "n_chars": n_chars, "lowercase": lowercase,
        "splits": {"train": splits.train, "val": splits.val, "test": splits.test},
    }
    file_meta = {b"charpipe": json.dumps(meta).encode()}

    lookup = lookup_table(vocab)
    schema = pa.schema([("id", pa.from_numpy_dtype(lookup.dtype))], metadata=file_meta)
    # Parquet stores small ints as INT32; byte-stream-split plus compression
    # keeps them about as small as a dictionary does, at twice the speed.
    with pq.ParquetWriter(folder / IDS_FILE, schema, use_dictionary=False,
                          column_encoding={"id": "BYTE_STREAM_SPLIT"}) as writer:
        write_behind(writer, (pa.table({"id": lookup[points]}, schema=schema)
                              for points in chunks()), ROW_GROUP)
    vocab_table = pa.table({
        "id": pa.array(np.arange(len(vocab), dtype=np.uint32)),
        "char": pa.array([chr(c) for c in vocab], type=pa.string()),
        "count": pa.array(counts.astype(np.int64)),
    })
    pq.write_table(vocab_table.replace_schema_metadata(file_meta), folder / VOCAB_FILE)
    return meta


def write_behind(writer: pq.ParquetWriter, tables: Iterator[pa.Table],
                 row_group_size: int | None) -> None:
    """Write each table (in row groups of `row_group_size` rows, or one row
    group per table) while the next is built.

    Parquet encoding releases the GIL, so on two cores the writing of one
    piece overlaps the reading and mapping of the next; at most two pieces
    are in memory at a time.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for table in tables:
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, table,
                                  row_group_size=row_group_size or len(table))
        if pending is not None:
            pending.result()


def read_meta(folder: Path) -> dict:
    schema = pq.read_schema(Path(folder) / IDS_FILE)
    return json.loads(schema.metadata[b"charpipe"])


def read_vocab(folder: Path) -> list[str]:
    return pq.read_table(Path(folder) / VOCAB_FILE, columns=["char"])["char"].to_pylist()


def read_ids(folder: Path, part: str | None = None) -> np.ndarray:
    """All ids, or one split's ("train", "val", "test"), as a numpy array."""
    if part is None:
        return pq.read_table(Path(folder) / IDS_FILE)["id"].to_numpy()
    bounds = Splits(**read_meta(folder)["splits"]).bounds(part)
    return IdsReader(folder).read(bounds.start, bounds.stop)


class IdsReader:
    """Ranges of ids, decompressing only the row groups that hold them.

    The last `keep` row groups read stay in memory, so neighbouring ranges
    read one after the other cost one decompression each.
    """

    def __init__(self, folder: Path, keep: int = 4):
        self.file = pq.ParquetFile(Path(folder) / IDS_FILE)
        rows = [self.file.metadata.row_group(i).num_rows
                for i in range(self.file.metadata.num_row_groups)]
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self.keep, self._groups = keep, {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _group(self, i: int) -> np.ndarray:
        if i not in self._groups:
            while len(self._groups) >= self.keep:
                self._groups.pop(next(iter(self._groups)))
            self._groups[i] = self.file.read_row_group(i)["id"].to_numpy()
        return self._groups[i]

    def read(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= len(self):
            raise EncodingError(f"ids [{start}, {stop}) are outside 0..{len(self)}")
        if start == stop:
            return self._group(0)[:0] if len(self) else np.zeros(0, np.uint8)
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        last = int(np.searchsorted(self.offsets, stop - 1, side="right")) - 1
        parts = [self._group(i) for i in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        base = self.offsets[first]
        return joined[start - base : stop - base]
