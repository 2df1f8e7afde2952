"""The retrain flow: promotion on the same test text, rejection, warm start,
two runs at once, and `charpipe generate` serving the champion."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from charpipe import promotion, registry, store

pytestmark = pytest.mark.slow

STAGES = ["download", "encode", "shard", "train", "convert", "evaluate"]
TINY = {"max_chars": 40_000, "batch_size": 8, "n_steps": 30, "units": 16,
        "sample_length": 20, "temperatures": [0.5]}


@pytest.fixture(scope="module")
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def run_retrain(prefect_api, corpus_path, tmp_path):
    from flows.retrain import retrain

    def run(**overrides):
        params = {**TINY, "source": str(corpus_path),
                  "artifacts": str(tmp_path / "artifacts"), **overrides}
        return retrain(**params)

    return run


def ref(result: dict, stage: str) -> store.Ref:
    path = result["artifacts"][stage]
    return store.Ref(stage=stage, key=Path(path).name, path=path, digest="")


def history(result: dict) -> list[dict]:
    return store.read_json(Path(result["artifacts"]["train"]) / "history.json")


def test_a_worse_model_is_rejected_and_a_warm_start_continues(run_retrain, tmp_path):
    champion = run_retrain(epochs=4)
    assert champion["decision"]["decision"] == "promoted"
    assert champion["decision"]["champion_loss"] is None

    worse = run_retrain(epochs=1)
    decision = worse["decision"]
    assert decision["decision"] == "rejected"
    assert decision["candidate_loss"] == worse["metrics"]["test_loss"]
    assert decision["champion_loss"] == champion["metrics"]["test_loss"]
    assert decision["candidate_loss"] > decision["champion_loss"]
    assert decision["champion_scored"] == "recorded (same test text)"
    state = registry.read(tmp_path / "artifacts")
    assert [d["decision"] for d in state["decisions"]] == ["promoted", "rejected"]
    assert state["champion"]["model"] == champion["model"]

    warm = run_retrain(epochs=4, warm_start=True, warm_epochs=1)
    assert not warm["cached"]["train"]
    params = store.read_manifest(warm["artifacts"]["train"])["params"]
    assert params["warm_start"] == champion["model"] and params["epochs"] == 1
    # Starting from four epochs of training, its first epoch already beats a
    # cold start's first epoch by far.
    assert history(warm)[0]["loss"] < history(worse)[0]["loss"] - 0.1
    assert warm["decision"]["champion_loss"] is not None

    # Warm starts have their own train key: the cold run is still a cache hit.
    again = run_retrain(epochs=1)
    assert all(again["cached"].values())


def test_a_champion_from_another_test_text_is_scored_again(run_retrain):
    champion = run_retrain(epochs=2)
    model = Path(champion["model"])
    loss, how = promotion.heldout_loss(model, promotion.test_text(ref(champion,
                                                                      "encode")))
    # The same computation as evaluate's, so the same number.
    assert loss == pytest.approx(champion["metrics"]["test_loss"], abs=1e-6)

    other = run_retrain(epochs=1, max_chars=50_000)
    decision = other["decision"]
    assert decision["champion_scored"] == "re-evaluated on this run's test text"
    assert math.isfinite(decision["champion_loss"])
    assert decision["champion_loss"] != champion["metrics"]["test_loss"]
    assert (decision["decision"] == "promoted") == (
        decision["candidate_loss"] < decision["champion_loss"])


def test_two_retrain_commands_at_once_then_generate(corpus_path, tmp_path):
    charpipe = str(Path(sys.executable).parent / "charpipe")
    root = tmp_path / "artifacts"
    procs = []
    for seed in (1, 2):
        # Two embedded servers starting at once on a busy machine: give them time.
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / f"prefect-{seed}"),
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
        env.pop("PREFECT_API_URL", None)
        command = [charpipe, "retrain", "--source", str(corpus_path), "--artifacts",
                   str(root), "--seed", str(seed), "--epochs", "1", "--json",
                   "--max-chars", "40000", "--batch-size", "8", "--n-steps", "30",
                   "--units", "16", "--sample-length", "20"]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    state = registry.read(root)
    assert sorted(d["flow_run_id"] for d in state["decisions"]) == sorted(
        r["flow_run_id"] for r in results)
    first, second = state["decisions"]
    assert first["decision"] == "promoted" and first["champion_loss"] is None
    assert second["champion_model"] == first["candidate"]["model"]
    assert second["champion_loss"] == first["candidate_loss"]
    winner = second if second["decision"] == "promoted" else first
    assert state["champion"]["model"] == winner["candidate"]["model"]

    out = subprocess.run([charpipe, "generate", "--artifacts", str(root), "--prompt",
                          "the ", "--length", "40", "--seed", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("the ") and len(out.stdout.strip()) >= 40

    out = subprocess.run([charpipe, "generate", "--artifacts", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "charpipe retrain" in out.stderr and "--model" in out.stderr
