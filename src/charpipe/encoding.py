"""Characters to ids and back, stored as Parquet.

The vocabulary is the set of characters of the (lower-cased) text, ranked by
frequency, ties broken by first appearance: the ids the book's Keras Tokenizer
gave. Ids are stored in the narrowest unsigned type that holds them, with the
corpus hash and split sizes in the file's metadata.
"""

import json
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


def read_text(path: Path, lowercase: bool = True, max_chars: int | None = None,
              decode_errors: str = "strict") -> str:
    """The corpus as text: UTF-8 without a byte-order mark, newlines as "\\n".

    Windows line endings are normalised, so a corpus saved on Windows has the
    same vocabulary as the same text saved elsewhere. `decode_errors="replace"`
    turns undecodable bytes into U+FFFD instead of refusing the file.
    """
    raw = Path(path).read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise EncodingError(
            f"{path} looks binary: it has a NUL byte at offset {nul}. charpipe "
            "trains on UTF-8 text; convert the file (UTF-16 text also has NUL "
            "bytes) or point --source at another one.")
    try:
        text = raw.decode("utf-8-sig", errors=decode_errors)
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise EncodingError(
            f"{path} is not UTF-8 text: byte {offset} is 0x{raw[offset]:02x}. "
            "Convert it to UTF-8, or pass --decode-errors replace to read such "
            "bytes as U+FFFD.") from exc
    text = text.replace("\r\n", "\n")
    if max_chars is not None:
        text = text[:max_chars]
    return text.lower() if lowercase else text


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def build_vocab(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (chars as code points ranked by frequency, their counts)."""
    chars, first, counts = np.unique(points, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    return chars[order], counts[order]


def id_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise EncodingError(f"vocabulary of {vocab_size} characters is too large")


def encode(points: np.ndarray, vocab: np.ndarray) -> np.ndarray:
    lookup = np.zeros(int(vocab.max()) + 1, dtype=id_dtype(len(vocab)))
    lookup[vocab] = np.arange(len(vocab), dtype=lookup.dtype)
    return lookup[points]


def decode(ids: np.ndarray, vocab: list[str]) -> str:
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    return table[np.asarray(ids, dtype=np.int64)].tobytes().decode("utf-32-le")


def write(folder: Path, text: str, corpus_sha256: str, val_fraction: float,
          test_fraction: float, lowercase: bool) -> dict:
    """Encode `text` into FOLDER/ids.parquet and FOLDER/vocab.parquet."""
    if not text:
        raise EncodingError("the corpus is empty: there is nothing to train on")
    points = code_points(text)
    vocab, counts = build_vocab(points)
    ids = encode(points, vocab)
    splits = Splits.of(len(ids), val_fraction, test_fraction)
    meta = {
        "corpus_sha256": corpus_sha256, "vocab_size": len(vocab),
        "n_chars": len(ids), "lowercase": lowercase,
        "splits": {"train": splits.train, "val": splits.val, "test": splits.test},
    }
    file_meta = {b"charpipe": json.dumps(meta).encode()}

    ids_table = pa.table({"id": pa.array(ids)})
    pq.write_table(ids_table.replace_schema_metadata(file_meta), folder / IDS_FILE)
    vocab_table = pa.table({
        "id": pa.array(np.arange(len(vocab), dtype=np.uint32)),
        "char": pa.array([chr(c) for c in vocab], type=pa.string()),
        "count": pa.array(counts.astype(np.int64)),
    })
    pq.write_table(vocab_table.replace_schema_metadata(file_meta), folder / VOCAB_FILE)
    return meta


def read_meta(folder: Path) -> dict:
    schema = pq.read_schema(Path(folder) / IDS_FILE)
    return json.loads(schema.metadata[b"charpipe"])


def read_vocab(folder: Path) -> list[str]:
    return pq.read_table(Path(folder) / VOCAB_FILE, columns=["char"])["char"].to_pylist()


def read_ids(folder: Path, part: str | None = None) -> np.ndarray:
    """All ids, or one split's ("train", "val", "test"), as a numpy array."""
    ids = pq.read_table(Path(folder) / IDS_FILE)["id"].to_numpy()
    if part is None:
        return ids
    splits = Splits(**read_meta(folder)["splits"])
    return ids[splits.bounds(part)]
