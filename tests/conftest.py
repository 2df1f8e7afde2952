"""Shared fixtures. Prefect and TensorFlow settings are fixed here, before
either is imported, so no test run touches ~/.prefect or another run's state."""

import collections
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="charpipe-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get(
    "CHARPIPE_CORPUS", REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    if not CORPUS.is_file():
        pytest.fail(f"the real corpus is not at {CORPUS}; point CHARPIPE_CORPUS at a "
                    "copy of tiny Shakespeare")
    return CORPUS


@pytest.fixture(scope="session")
def shakespeare(corpus_path) -> str:
    return corpus_path.read_text(encoding="utf-8")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test server (SQLite in the temporary PREFECT_HOME) for all tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


class CorpusServer:
    """A real HTTP server on 127.0.0.1 whose answers the tests choose.

    `files` maps a path to the bytes served there; the other paths misbehave
    on purpose. `hits` counts requests per path.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: collections.Counter = collections.Counter()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] += 1
                body = server.files.get(self.path)
                if body is not None:
                    self._send(body)
                elif self.path == "/cut.txt":
                    self._send(b"x" * 1000, length=5000)  # then hangs up
                elif self.path == "/stall.txt":
                    self._send(b"x" * 1000, length=5000, flush_then_sleep=3)
                elif self.path == "/slow.txt":
                    time.sleep(3)
                    self._send(b"late")
                elif self.path == "/loop.txt":
                    self.send_response(302)
                    self.send_header("Location", "/loop.txt")
                    self.end_headers()
                elif self.path.startswith("/busy"):
                    self.send_error(503, "busy")
                elif self.path == "/broken.txt":
                    self.send_error(500, "broken")
                else:
                    self.send_error(404, "not here")

            def _send(self, body, length=None, flush_then_sleep=0):
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", str(length or len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    time.sleep(flush_then_sleep)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first: what the test wanted

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def corpus_server():
    server = CorpusServer()
    yield server
    server.close()
