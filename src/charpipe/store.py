"""The artifact store: one folder per stage output, addressed by its inputs.

A stage's folder is `ROOT/<stage>/<key>`, where the key hashes the stage name,
the code version, the digests of its inputs and its own parameters. Folders are
built in a hidden scratch folder beside the final one and renamed into place
only when complete, with a `manifest.json` listing every file's sha256; a
folder that fails that check is never loaded.
"""

import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from charpipe.errors import CharpipeError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class StoreError(CharpipeError, RuntimeError):
    """An artifact folder cannot be written or read."""


@dataclass(frozen=True)
class Ref:
    """What one stage hands the next: where its folder is, and its digest."""

    stage: str
    key: str
    path: str
    digest: str

    @property
    def folder(self) -> Path:
        return Path(self.path)

    def to_dict(self) -> dict:
        return asdict(self)


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def code_version(*modules: str) -> str:
    """Hash of the library sources a stage runs, so a code change is a new key.

    Read as text rather than imported: computing a cache key must not pay for
    importing TensorFlow.
    """
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in sorted(set(modules) | {"store"}):
        digest.update((here / f"{name}.py").read_bytes())
    return digest.hexdigest()[:16]


def stage_key(stage: str, code: str, inputs: dict[str, str], params: dict) -> str:
    payload = {"stage": stage, "code": code, "inputs": inputs, "params": params}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:24]


def stage_dir(root: Path, stage: str, key: str) -> Path:
    return Path(root) / stage / key


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "prefect", "pyarrow", "numpy", "charpipe"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def read_manifest(folder: Path) -> dict:
    return read_json(Path(folder) / MANIFEST)


def verify(folder: Path) -> str | None:
    """None if the folder is complete and untouched, else what is wrong with it."""
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"{name} has {size} bytes, manifest says {expected['bytes']}"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} does not match its sha256 in the manifest"
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, value) -> None:
    """Write JSON aside and rename it into place, so readers never see half."""
    path = Path(path)
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(scratch, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(scratch, path)


def _quarantine(folder: Path, reason: str) -> None:
    # Keep the damaged folder for inspection instead of deleting evidence.
    target = folder.with_name(f".damaged-{folder.name}-{int(time.time())}")
    log.warning("artifact folder %s is damaged (%s); moved to %s", folder, reason, target)
    os.replace(folder, target)


def _make_dirs(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot write artifacts under {folder}: {exc.strerror}. "
            "Choose a writable folder with --artifacts or CHARPIPE_ARTIFACTS.") from exc


@contextmanager
def claim(root: Path, stage: str, key: str):
    """Hold the lock of one stage key for as long as the block runs.

    Two runs of the same configuration at once would otherwise build (and,
    for training, checkpoint) the same folder side by side; with the lock the
    later one waits and then finds the folder ready.
    """
    folder = Path(root) / stage
    _make_dirs(folder)
    with open(folder / f".lock-{key}", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _no_space(exc: BaseException | None) -> bool:
    """Whether a full disk (or a file size limit) is behind `exc` or its causes."""
    while exc is not None:
        if isinstance(exc, OSError) and (
                exc.errno in _NO_SPACE
                or any(os.strerror(code) in str(exc) for code in _NO_SPACE)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def building(root: Path, stage: str, key: str, inputs: dict, params: dict):
    """Yield a scratch folder; on success publish it as ROOT/stage/key.

    The manifest is written last and the folder renamed into place in one
    step. If another run published the same key meanwhile, its folder is
    kept and ours discarded: both were built from the same inputs. Whatever
    fails, the scratch folder goes and nothing half-written is published.
    """
    final = stage_dir(root, stage, key)
    _make_dirs(final.parent)
    scratch = final.with_name(f".building-{key}-{uuid.uuid4().hex[:8]}")
    _make_dirs(scratch)
    try:
        yield scratch
        _seal(scratch, stage, key, inputs, params)
        _publish(scratch, final)
    except Exception as exc:
        if _no_space(exc):
            raise StoreError(
                f"ran out of space while writing {final}: {exc}. Nothing was "
                "published; free some space or choose another --artifacts.") from exc
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _seal(scratch: Path, stage: str, key: str, inputs: dict, params: dict) -> None:
    files = {}
    for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
        name = path.relative_to(scratch).as_posix()
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "stage": stage, "key": key, "inputs": inputs, "params": params,
        "files": files, "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(scratch / MANIFEST, manifest)
    _fsync_dir(scratch)


def _publish(scratch: Path, final: Path) -> None:
    problem = verify(final) if final.exists() else "missing"
    if problem is None:
        return
    if problem != "missing":
        _quarantine(final, problem)
    try:
        os.rename(scratch, final)
    except OSError:
        if verify(final) is not None:
            raise
    _fsync_dir(final.parent)


def ref_for(root: Path, stage: str, key: str, digest: str | None = None) -> Ref:
    folder = stage_dir(root, stage, key)
    return Ref(stage=stage, key=key, path=str(folder), digest=digest or key)
