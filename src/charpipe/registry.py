"""The champion registry: which model serves, and every decision that made it so.

`ROOT/registry/registry.json` holds the current champion and the list of all
decisions (promotions and rejections, with both losses, the corpus hash and
the flow run id). It is one file so that a promotion is one rename: a reader
sees the registry before or after a decision, never half of one.

Deciding reads the champion, scores it, compares and writes; two retrain runs
doing that at once could both see the same champion and both win. The whole
read-decide-write step therefore runs under an exclusive `flock` on
`ROOT/registry/.lock`, which the kernel releases if the holder dies.
"""

import fcntl
import hashlib
import json
import math
import time
from contextlib import contextmanager
from pathlib import Path

from charpipe.config import ConfigError
from charpipe.errors import CharpipeError
from charpipe.store import write_json

REGISTRY_DIR = "registry"
REGISTRY_FILE = "registry.json"
LOCK_FILE = ".lock"
LOCK_TIMEOUT_S = 900.0


class RegistryError(CharpipeError, RuntimeError):
    """The registry cannot be read, locked or written."""


def registry_path(root: Path) -> Path:
    return Path(root) / REGISTRY_DIR / REGISTRY_FILE


def read(root: Path) -> dict:
    """The registry as stored: {"champion": entry or None, "decisions": [...]}."""
    path = registry_path(root)
    if not path.exists():
        return {"champion": None, "decisions": []}
    try:
        state = json.loads(path.read_text())
        if not isinstance(state.get("decisions"), list) or "champion" not in state:
            raise ValueError("expected the keys 'champion' and 'decisions'")
    except (OSError, ValueError) as exc:
        raise RegistryError(
            f"the registry {path} is unreadable ({exc}); nothing was changed. Move "
            "it aside to start a new registry, or restore it from a backup.") from exc
    return state


def champion(root: Path) -> dict | None:
    return read(root)["champion"]


@contextmanager
def locked(root: Path, timeout: float = LOCK_TIMEOUT_S):
    """Hold the registry's exclusive lock; wait for it up to `timeout` seconds."""
    folder = Path(root) / REGISTRY_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK_FILE, "a")
    except OSError as exc:
        raise RegistryError(
            f"cannot write the registry under {folder}: {exc.strerror}. Choose a "
            "writable artifact root with --artifacts or CHARPIPE_ARTIFACTS.") from exc
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"another run has held {folder / LOCK_FILE} for over "
                        f"{timeout:.0f} s; try again when it has finished") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_tolerance(tolerance: float) -> None:
    ok = isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool)
    if not (ok and math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigError(
            f"tolerance: must be a number >= 0 (nats/char), got {tolerance!r}")


def decide(candidate_loss: float, champion_loss: float | None,
           tolerance: float) -> tuple[bool, str]:
    """Promote only a candidate better than the champion by more than `tolerance`."""
    if champion_loss is None:
        return True, "there is no champion yet; the first model becomes champion"
    if math.isinf(champion_loss):
        return True, "the champion cannot be scored on this test text"
    margin = champion_loss - candidate_loss
    if candidate_loss < champion_loss - tolerance:
        return True, (f"test loss {candidate_loss:.4f} beats the champion's "
                      f"{champion_loss:.4f} by {margin:.4f} > tolerance {tolerance:g}")
    return False, (f"test loss {candidate_loss:.4f} does not beat the champion's "
                   f"{champion_loss:.4f} by more than tolerance {tolerance:g} "
                   f"(margin {margin:+.4f})")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def consider(root: Path, candidate: dict, tolerance: float, score_champion,
             flow_run_id: str | None = None) -> dict:
    """Compare a candidate with the champion, record the decision, promote or not.

    `candidate` carries at least `model` (its folder) and `test_loss`;
    `score_champion(champion)` returns the champion's loss on the candidate's
    test text and a note on how it was obtained (math.inf when the champion
    cannot read that text). Runs under the lock; returns the decision.
    """
    check_tolerance(tolerance)
    with locked(root):
        state = read(root)
        current = state["champion"]
        champion_loss, how = None, "no champion"
        if current is not None and current["model"] == candidate["model"]:
            promote, reason = False, "the candidate is the champion itself (same model)"
            champion_loss, how = current["test_loss"], "same model"
        else:
            if current is not None:
                champion_loss, how = score_champion(current)
            promote, reason = decide(candidate["test_loss"], champion_loss, tolerance)
        decision = {
            "time": _now(), "flow_run_id": flow_run_id,
            "decision": "promoted" if promote else "rejected", "reason": reason,
            "tolerance": tolerance,
            "candidate_loss": candidate["test_loss"],
            "champion_loss": (None if champion_loss is None
                              or math.isinf(champion_loss) else champion_loss),
            "champion_scored": how,
            "candidate": candidate,
            "champion_model": current["model"] if current else None,
        }
        state["decisions"].append(decision)
        if promote:
            state["champion"] = {**candidate, "promoted": decision["time"],
                                 "flow_run_id": flow_run_id}
        write_json(registry_path(root), state)
    return decision


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
