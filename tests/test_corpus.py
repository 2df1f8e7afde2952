"""Downloads through a real HTTP server on 127.0.0.1 (see conftest.CorpusServer)."""

import hashlib

import pytest

from charpipe import corpus

TEXT = ("first citizen:\nbefore we proceed any further, hear me speak.\n" * 50).encode()


@pytest.fixture
def server(corpus_server):
    corpus_server.files["/corpus.txt"] = TEXT
    return corpus_server.url


def test_download_checks_the_hash(tmp_path, server):
    expected = hashlib.sha256(TEXT).hexdigest()
    digest = corpus.fetch(f"{server}/corpus.txt", tmp_path / "c.txt", expected)
    assert digest == expected
    assert (tmp_path / "c.txt").read_bytes() == TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    with pytest.raises(corpus.CorpusError) as info:
        corpus.fetch(f"{server}/corpus.txt", tmp_path / "c.txt", "0" * 64)
    message = str(info.value)
    assert "0" * 64 in message and hashlib.sha256(TEXT).hexdigest() in message
    assert "--sha256" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, message", [
    ("/missing.txt", "HTTP 404"),
    ("/loop.txt", "redirects in a loop"),
])
def test_final_failures_are_not_retried_and_leave_nothing(tmp_path, server, path,
                                                          message):
    with pytest.raises(corpus.CorpusError, match=message) as info:
        corpus.fetch(f"{server}{path}", tmp_path / "c.txt")
    assert not isinstance(info.value, corpus.TransientError)
    assert "--source" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, message", [
    ("/busy.txt", "HTTP 503"),
    ("/broken.txt", "HTTP 500"),
    ("/cut.txt", "cut after 1000 bytes of 5000"),
    ("/stall.txt", "cut after 1000 bytes"),
    ("/slow.txt", "unreachable .*timed out"),
])
def test_failures_worth_a_retry_leave_nothing(tmp_path, server, path, message):
    with pytest.raises(corpus.TransientError, match=message):
        corpus.fetch(f"{server}{path}", tmp_path / "c.txt", timeout_s=0.5)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_default_source_names_the_way_out(tmp_path, monkeypatch):
    # Nothing listens on port 9 of 127.0.0.1: the request is refused at once.
    monkeypatch.setattr(corpus, "DEFAULT_SOURCE", "http://127.0.0.1:9/shakespeare")
    with pytest.raises(corpus.TransientError, match="offline, point --source"):
        corpus.fetch("http://127.0.0.1:9/shakespeare", tmp_path / "c.txt")


def test_plain_paths_and_file_urls(tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(TEXT)
    expected = hashlib.sha256(TEXT).hexdigest()
    assert corpus.fetch(str(source), tmp_path / "a.txt") == expected
    assert corpus.fetch(source.as_uri(), tmp_path / "b.txt") == expected
    with pytest.raises(corpus.CorpusError, match="cannot be read"):
        corpus.fetch(str(tmp_path / "nope.txt"), tmp_path / "c.txt")


def test_an_edited_file_has_a_new_fingerprint(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("one")
    before = corpus.fingerprint(str(source))
    source.write_text("other")
    assert corpus.fingerprint(str(source)) != before
