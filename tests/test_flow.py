"""The train flow end to end through Prefect, on a prefix of the real corpus."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charpipe import store

pytestmark = pytest.mark.slow

STAGES = ["download", "encode", "shard", "train", "convert", "evaluate"]
TINY = {"max_chars": 40_000, "batch_size": 8, "n_steps": 30, "units": 16,
        "epochs": 1, "sample_length": 20, "temperatures": [0.0, 1.0]}


@pytest.fixture
def run_flow(prefect_api, corpus_path, tmp_path):
    from flows.train import train

    def run(**overrides):
        params = {**TINY, "source": str(corpus_path),
                  "artifacts": str(tmp_path / "artifacts"), **overrides}
        return train(**params)

    return run


def ran(result):
    return [stage for stage in STAGES if not result["cached"][stage]]


def test_second_run_is_all_cache_hits(run_flow):
    first = run_flow()
    assert ran(first) == STAGES
    for stage in STAGES:
        folder = Path(first["artifacts"][stage])
        assert folder.parent.name == stage
        assert store.verify(folder) is None
    assert first["val_loss"] < first["metrics"]["uniform_loss"]
    assert [s["temperature"] for s in first["samples"]] == [0.0, 1.0]

    second = run_flow()
    assert ran(second) == []
    assert second["artifacts"] == first["artifacts"]
    assert second["val_loss"] == first["val_loss"]


def test_a_new_temperature_reruns_only_evaluate(run_flow):
    run_flow()
    assert ran(run_flow(temperatures=[0.5])) == ["evaluate"]


def test_new_n_steps_reruns_shard_and_everything_after(run_flow):
    run_flow()
    assert ran(run_flow(n_steps=20)) == ["shard", "train", "convert", "evaluate"]


def test_missing_or_damaged_folders_are_rebuilt_not_trusted(run_flow):
    first = run_flow()
    shutil.rmtree(first["artifacts"]["train"])
    again = run_flow()
    assert ran(again) == ["train"]
    assert store.verify(again["artifacts"]["train"]) is None

    ids = Path(first["artifacts"]["encode"]) / "ids.parquet"
    os.truncate(ids, ids.stat().st_size // 2)
    third = run_flow()
    assert ran(third) == ["encode"]
    assert store.verify(third["artifacts"]["encode"]) is None
    damaged = [p for p in ids.parent.parent.iterdir() if p.name.startswith(".damaged-")]
    assert len(damaged) == 1  # the damaged copy is kept aside, not loaded

    fourth = run_flow()
    assert ran(fourth) == []


def test_the_readme_smoke_run_and_generate(corpus_path, tmp_path):
    """The README's main line, twice, then `charpipe generate` on its model."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    charpipe = str(Path(sys.executable).parent / "charpipe")
    command = [charpipe, "run", "--preset", "smoke", "--source", str(corpus_path),
               "--artifacts", str(tmp_path / "artifacts"), "--json"]

    timings, results = [], []
    for _ in range(2):
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, env=env,
                             timeout=600)
        timings.append(time.perf_counter() - start)
        assert out.returncode == 0, out.stderr[-3000:]
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    first, second = results
    for key in ("flow_run_id", "val_loss", "bits_per_char", "samples", "artifacts"):
        assert key in first
    assert all(s["text"] for s in first["samples"])
    for stage in STAGES:
        assert (Path(first["artifacts"][stage]) / store.MANIFEST).is_file()
    assert not any(first["cached"].values())
    assert all(second["cached"].values())
    assert second["flow_run_id"] != first["flow_run_id"]

    model = first["model"]
    out = subprocess.run([charpipe, "generate", "--model", model, "--prompt", "romeo",
                          "--length", "80", "--temperature", "0.5", "--seed", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("romeo") and len(out.stdout.strip()) >= 80

    # The model read lower-cased text, so it reads the prompt lower-cased too;
    # a character it never saw is refused by name.
    out = subprocess.run([charpipe, "generate", "--model", model, "--prompt", "Romeo",
                          "--length", "10"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("romeo")
    out = subprocess.run([charpipe, "generate", "--model", model, "--prompt", "romeo€"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    assert "['€']" in out.stderr and "Traceback" not in out.stderr


def test_downloads_are_retried_only_when_a_retry_may_help(prefect_api, corpus_server,
                                                          tmp_path):
    from prefect import flow

    import tasks
    from charpipe import config, corpus

    quick = tasks.download.with_options(retry_delay_seconds=0)

    @flow
    def fetch(source: str):
        params = config.stage_params(config.resolve(source=source), "download")
        return quick(root=str(tmp_path), params=params)

    for path, hits in (("/busy-retried.txt", 4), ("/missing-once.txt", 1)):
        with pytest.raises(corpus.CorpusError, match="--source"):
            fetch(corpus_server.url + path)
        assert corpus_server.hits[path] == hits
    assert [p.name for p in (tmp_path / "download").iterdir()
            if not p.name.startswith(".lock-")] == []
