"""The champion registry: decisions, atomic storage and the lock between runs."""

import json
import math
import multiprocessing
import time

import pytest

from charpipe import registry
from charpipe.config import ConfigError


def entry(model: str, test_loss: float, text: str = "t") -> dict:
    return {"model": model, "test_loss": test_loss, "test_text_sha256": text}


def recorded(champion: dict):
    return champion["test_loss"], "recorded"


def test_first_model_becomes_champion(tmp_path):
    assert registry.read(tmp_path) == {"champion": None, "decisions": []}
    decision = registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded, "run-1")
    assert decision["decision"] == "promoted"
    assert decision["champion_loss"] is None
    champion = registry.champion(tmp_path)
    assert champion["model"] == "a" and champion["flow_run_id"] == "run-1"


def test_a_worse_model_is_rejected_with_both_losses(tmp_path):
    registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded)
    decision = registry.consider(tmp_path, entry("b", 2.5), 0.0, recorded, "run-2")
    assert decision["decision"] == "rejected"
    assert (decision["candidate_loss"], decision["champion_loss"]) == (2.5, 2.0)
    state = registry.read(tmp_path)
    assert state["champion"]["model"] == "a"
    assert [d["decision"] for d in state["decisions"]] == ["promoted", "rejected"]


def test_tolerance_demands_a_clear_margin(tmp_path):
    registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded)
    assert registry.consider(tmp_path, entry("b", 1.95), 0.1,
                             recorded)["decision"] == "rejected"
    assert registry.consider(tmp_path, entry("c", 1.85), 0.1,
                             recorded)["decision"] == "promoted"
    assert registry.champion(tmp_path)["model"] == "c"


def test_the_champion_itself_is_not_promoted_again(tmp_path):
    registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded)
    decision = registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded)
    assert decision["decision"] == "rejected" and "itself" in decision["reason"]


def test_a_champion_that_cannot_be_scored_gives_way(tmp_path):
    registry.consider(tmp_path, entry("a", 1.0), 0.0, recorded)
    decision = registry.consider(tmp_path, entry("b", 3.0, "other"), 0.0,
                                 lambda champion: (math.inf, "vocabulary lacks 'x'"))
    assert decision["decision"] == "promoted"
    assert decision["champion_loss"] is None
    assert decision["champion_scored"] == "vocabulary lacks 'x'"


@pytest.mark.parametrize("tolerance", [-0.1, math.nan, "0.1", True])
def test_bad_tolerance_is_refused_before_anything_is_written(tmp_path, tolerance):
    with pytest.raises(ConfigError, match="tolerance"):
        registry.consider(tmp_path, entry("a", 2.0), tolerance, recorded)
    assert not registry.registry_path(tmp_path).exists()


def test_an_unreadable_registry_is_reported_and_left_alone(tmp_path):
    path = registry.registry_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"champion": ')
    with pytest.raises(registry.RegistryError, match="unreadable.*Move it aside"):
        registry.consider(tmp_path, entry("a", 2.0), 0.0, recorded)
    assert path.read_text() == '{"champion": '


def test_the_lock_times_out_with_a_clear_error(tmp_path):
    with registry.locked(tmp_path):
        with pytest.raises(registry.RegistryError, match="try again"):
            with registry.locked(tmp_path, timeout=0.2):
                pass


def _slow_score(champion: dict):
    # Widens the window between reading the champion and writing the decision,
    # where two runs without the lock would both see the same champion.
    time.sleep(0.2)
    return champion["test_loss"], "recorded"


def _decide_in_process(root: str, model: str, loss: float, start: float) -> None:
    time.sleep(max(0.0, start - time.time()))
    registry.consider(root, entry(model, loss), 0.0, _slow_score, f"run-{model}")


def test_runs_deciding_at_once_leave_one_consistent_registry(tmp_path):
    registry.consider(tmp_path, entry("seed", 3.0), 0.0, recorded)
    losses = {"p0": 2.9, "p1": 2.5, "p2": 2.7, "p3": 2.6, "p4": 2.95, "p5": 2.4}
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_decide_in_process,
                             args=(str(tmp_path), model, loss, start))
             for model, loss in losses.items()]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    state = json.loads(registry.registry_path(tmp_path).read_text())
    decisions = state["decisions"][1:]
    assert sorted(d["candidate"]["model"] for d in decisions) == sorted(losses)
    # Replayed in the order written, every decision saw the champion left by
    # the one before it; so the best candidate ends up champion, once.
    champion_loss = 3.0
    for d in decisions:
        assert d["champion_loss"] == champion_loss
        if d["decision"] == "promoted":
            assert d["candidate_loss"] < champion_loss
            champion_loss = d["candidate_loss"]
    assert state["champion"]["model"] == "p5"
    assert [p.name for p in tmp_path.joinpath("registry").iterdir()
            if p.name.endswith(".tmp")] == []
