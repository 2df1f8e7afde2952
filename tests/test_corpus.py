"""Downloads through a real HTTP server on 127.0.0.1."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from charpipe import corpus

TEXT = ("first citizen:\nbefore we proceed any further, hear me speak.\n" * 50).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/corpus.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(TEXT)))
            self.end_headers()
            self.wfile.write(TEXT)
        elif self.path == "/cut.txt":
            self.send_response(200)
            self.send_header("Content-Length", str(len(TEXT)))
            self.end_headers()
            self.wfile.write(TEXT[:100])  # then hang up
        elif self.path == "/busy.txt":
            self.send_error(503, "busy")
        else:
            self.send_error(404, "not here")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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


def test_404_is_final_and_leaves_nothing(tmp_path, server):
    with pytest.raises(corpus.CorpusError, match="HTTP 404") as info:
        corpus.fetch(f"{server}/missing.txt", tmp_path / "c.txt")
    assert not isinstance(info.value, corpus.TransientError)
    assert list(tmp_path.iterdir()) == []


def test_server_errors_and_cut_downloads_are_worth_a_retry(tmp_path, server):
    with pytest.raises(corpus.TransientError, match="HTTP 503"):
        corpus.fetch(f"{server}/busy.txt", tmp_path / "c.txt")
    with pytest.raises(corpus.TransientError, match="cut after 100 bytes"):
        corpus.fetch(f"{server}/cut.txt", tmp_path / "c.txt")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_default_source_names_the_way_out(tmp_path, monkeypatch):
    # Nothing listens on port 9 of 127.0.0.1: the request is refused at once.
    monkeypatch.setattr(corpus, "DEFAULT_SOURCE", "http://127.0.0.1:9/shakespeare")
    with pytest.raises(corpus.TransientError, match="--source"):
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
