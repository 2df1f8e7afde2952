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


TRICKY = ("ΟΔΟΣ ΣΑΣ\nΣίσυφος ΜΑΣ.\n" + "naïve café 🙂 ok\n"
          + "İstanbul ǅ\n") * 5


@pytest.mark.parametrize("chunk_bytes", [5, 7, 64, 1 << 20])
@pytest.mark.parametrize("lowercase", [True, False])
def test_a_file_read_in_pieces_encodes_like_the_whole_text(tmp_path, chunk_bytes,
                                                           lowercase):
    # Pieces split multi-byte characters and words; a final sigma lower-cases
    # by its neighbours, so a careless cut would change the text.
    path = tmp_path / "corpus.txt"
    path.write_text(TRICKY, encoding="utf-8")
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    whole.mkdir(), pieces.mkdir()
    text = TRICKY.lower() if lowercase else TRICKY
    expected = encoding.write(whole, text, "0" * 64, 0.1, 0.1, lowercase)
    got = encoding.write_file(pieces, path, "0" * 64, 0.1, 0.1, lowercase,
                              chunk_bytes=chunk_bytes)
    assert got == expected
    assert encoding.read_vocab(pieces) == encoding.read_vocab(whole)
    assert np.array_equal(encoding.read_ids(pieces), encoding.read_ids(whole))
    assert encoding.decode(encoding.read_ids(pieces), encoding.read_vocab(pieces)) == text


def test_a_long_stretch_without_spaces_is_cut_between_characters(tmp_path):
    path = tmp_path / "corpus.txt"
    text = "é🙂ab" * 40
    path.write_text(text, encoding="utf-8")
    assert "".join(encoding.text_chunks(path, False, chunk_bytes=3)) == text
    assert "".join(encoding.text_chunks(path, True, chunk_bytes=3)) == text.lower()


def test_lowercasing_by_character_matches_str_lower():
    text = "".join(chr(c) for c in range(0x20, 0x3000)) + " ΟΔΟΣ İ"
    for piece in (text, text.replace("Σ", "").replace("İ", "")):
        assert np.array_equal(encoding._lower(piece), encoding.code_points(piece.lower()))


def test_max_chars_cuts_before_lowercasing_in_pieces(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TRICKY, encoding="utf-8")
    pieces = encoding.text_chunks(path, True, 50, chunk_bytes=5)
    assert "".join(pieces) == TRICKY[:50].lower()


def test_bad_bytes_in_a_later_piece_name_their_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("é".encode() * 20 + b"\xff")
    with pytest.raises(encoding.EncodingError, match="byte 40 is 0xff"):
        encoding.write_file(tmp_path, path, "0" * 64, 0.1, 0.1, True, chunk_bytes=8)


def test_ranges_of_ids_cross_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "ROW_GROUP", 7)
    text = "".join(chr(97 + i % 26) for i in range(500))
    encoding.write(tmp_path, text, "0" * 64, 0.1, 0.1, False)
    every = encoding.read_ids(tmp_path)
    reader = encoding.IdsReader(tmp_path, keep=2)
    assert reader.file.metadata.num_row_groups > 50
    for start, stop in [(0, 500), (3, 4), (6, 8), (13, 200), (499, 500), (250, 250)]:
        assert np.array_equal(reader.read(start, stop), every[start:stop])
    with pytest.raises(encoding.EncodingError, match="outside"):
        reader.read(10, 501)
    assert np.array_equal(encoding.read_ids(tmp_path, "val"), every[400:450])
