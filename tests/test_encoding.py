import collections

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charpipe import encoding


def encode_folder(tmp_path, text, lowercase=True):
    meta = encoding.write(tmp_path, text, "0" * 64, 0.05, 0.05, lowercase)
    return meta, encoding.read_vocab(tmp_path), encoding.read_ids(tmp_path)


def test_round_trip_on_the_real_corpus(tmp_path, shakespeare):
    text = shakespeare.lower()
    meta, vocab, ids = encode_folder(tmp_path, text)
    assert meta["vocab_size"] == len(vocab) == 39
    assert ids.dtype == np.uint8
    assert encoding.decode(ids, vocab) == text


def test_ids_are_ranked_like_the_books_tokenizer(tmp_path, shakespeare):
    text = shakespeare[:50_000].lower()
    _, vocab, _ = encode_folder(tmp_path, text)
    ranked = [c for c, _ in collections.Counter(text).most_common()]
    assert vocab == ranked


def test_metadata_records_hash_sizes_and_splits(tmp_path):
    text = "abcab" * 200
    encoding.write(tmp_path, text, "f" * 64, 0.1, 0.05, True)
    meta = encoding.read_meta(tmp_path)
    assert meta["corpus_sha256"] == "f" * 64
    assert meta["splits"] == {"train": 850, "val": 100, "test": 50}
    vocab_meta = pq.read_schema(tmp_path / encoding.VOCAB_FILE).metadata
    assert b"charpipe" in vocab_meta
    parts = [encoding.read_ids(tmp_path, p) for p in ("train", "val", "test")]
    assert np.array_equal(np.concatenate(parts), encoding.read_ids(tmp_path))


def test_a_vocabulary_over_255_characters_widens_the_ids(tmp_path):
    text = "".join(chr(c) for c in range(0x400, 0x400 + 300)) + "🙂🙃" * 3
    meta, vocab, ids = encode_folder(tmp_path, text, lowercase=False)
    assert meta["vocab_size"] == 302
    assert ids.dtype == np.uint16
    assert encoding.decode(ids, vocab) == text


def test_case_is_kept_when_asked(tmp_path):
    _, vocab, ids = encode_folder(tmp_path, "ABab", lowercase=False)
    assert encoding.decode(ids, vocab) == "ABab"


def test_empty_text_is_refused(tmp_path):
    with pytest.raises(encoding.EncodingError, match="empty"):
        encoding.write(tmp_path, "", "0" * 64, 0.05, 0.05, True)


def test_bytes_that_are_not_utf8_name_their_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello \xff world")
    with pytest.raises(encoding.EncodingError, match="byte 6 is 0xff"):
        encoding.read_text(path)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_round_trip_on_any_text(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("enc")
    _, vocab, ids = encode_folder(folder, text, lowercase=False)
    assert encoding.decode(ids, vocab) == text
    assert np.iinfo(ids.dtype).max >= len(vocab) - 1
