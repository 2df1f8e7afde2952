"""Fetching the corpus: http(s), file:// or a plain path, checked by sha256.

Bytes are streamed to a scratch file and renamed into place only after the
hash matches, so a cut or wrong download never sits where a later run would
trust it. Network retries belong to the orchestration layer; this module
tells which failures are worth retrying (`TransientError`).
"""

import hashlib
import os
import http.client
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from charpipe.errors import CharpipeError
from charpipe.config import DEFAULT_SOURCE
from charpipe.store import sha256_file

USER_AGENT = "charpipe (+https://github.com/charpipe)"
TIMEOUT_S = 30
_CHUNK = 1 << 20


class CorpusError(CharpipeError, RuntimeError):
    """The corpus cannot be had; retrying will not help."""


class TransientError(CorpusError):
    """A network failure that a retry may cure (timeouts, 5xx, refused)."""


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def local_path(source: str) -> Path | None:
    """The file a `file://` or plain-path source names; None for http(s)."""
    parts = urllib.parse.urlsplit(source)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme and len(parts.scheme) > 1:
        raise CorpusError(
            f"unsupported source scheme {parts.scheme!r} in {source!r}; "
            "use http(s)://, file:// or a path")
    return Path(source).expanduser()


def fingerprint(source: str) -> dict:
    """What identifies the bytes behind a source.

    A local file is known by its absolute path and the sha256 of its content,
    so any edit makes a new corpus, even one that keeps the file's size and
    modification time. A URL is only known by itself; the caller adds a time
    bucket or a pinned hash.
    """
    path = require(source)
    if path is None:
        return {"url": source}
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return {"path": str(path.resolve()), "sha256": digest}


def require(source: str) -> Path | None:
    """The local file a source names, refused early if it is not a readable
    regular file; None for a URL. Cheap: reads nothing."""
    path = local_path(source)
    if path is None:
        return None
    if path.exists() and not path.is_file():
        raise CorpusError(f"corpus source {path} is not a regular file. Pass a "
                          "text file or a URL with --source.")
    if not os.access(path, os.R_OK):
        try:
            path.stat()
        except OSError as exc:
            raise _unreadable(path, exc) from exc
    return path


def _unreadable(path: Path, exc: OSError) -> CorpusError:
    return CorpusError(f"corpus file {path} cannot be read: {exc.strerror}. "
                       "Pass an existing file or URL with --source.")


def fetch(source: str, dest: Path, sha256: str | None = None,
          timeout_s: float = TIMEOUT_S) -> str:
    """Copy or download `source` to `dest`; return its sha256.

    `dest` appears only complete and verified. A hash mismatch removes the
    downloaded bytes and names both hashes.
    """
    dest = Path(dest)
    scratch = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        digest = _stream(source, scratch, timeout_s)
        if sha256 and digest != sha256.lower():
            raise CorpusError(
                f"sha256 mismatch for {source}: expected {sha256.lower()}, got "
                f"{digest}. The download was discarded. If the corpus changed on "
                "purpose, pass the new hash with --sha256.")
        os.replace(scratch, dest)
        return digest
    finally:
        scratch.unlink(missing_ok=True)


def _stream(source: str, scratch: Path, timeout_s: float) -> str:
    digest = hashlib.sha256()
    with _open(source, timeout_s) as response, open(scratch, "wb") as out:
        try:
            while chunk := response.read1(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            raise TransientError(
                f"download of {source} was cut after {out.tell()} bytes ({exc!r}). "
                + _way_out(source)) from exc
        # http.client returns a short body without complaint when the server
        # hangs up early; only the announced length tells.
        announced = getattr(response, "headers", {}).get("Content-Length")
        if announced is not None and int(announced) != out.tell():
            raise TransientError(
                f"download of {source} was cut after {out.tell()} bytes of "
                f"{announced}. " + _way_out(source))
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _open(source: str, timeout_s: float):
    path = local_path(source)
    if path is not None:
        try:
            return open(path, "rb")
        except OSError as exc:
            raise CorpusError(
                f"corpus file {path} cannot be read: {exc.strerror}. "
                "Pass an existing file or URL with --source.") from exc
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            # urllib gives up on a redirect it has seen before, or after ten.
            raise CorpusError(f"{source} redirects in a loop or too many times "
                              f"(last: HTTP {exc.code} to {exc.headers.get('Location')}). "
                              + _way_out(source)) from exc
        kind = TransientError if exc.code >= 500 or exc.code == 429 else CorpusError
        raise kind(f"{source} answered HTTP {exc.code} {exc.reason}. "
                   + _way_out(source)) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"{source} is unreachable ({reason}). "
                             + _way_out(source)) from exc


def _way_out(source: str) -> str:
    if source == DEFAULT_SOURCE:
        return ("The default source needs internet access; offline, point "
                "--source at a local copy of tiny Shakespeare.")
    return "Check the address, or point --source at a local file."
