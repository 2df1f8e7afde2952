"""Deployments on a real Prefect server and worker, as the README runs them.

A `prefect server start` on a free port of 127.0.0.1, the `process` work pool,
`prefect deploy --all` from prefect.yaml, a worker, and `prefect deployment run`
for `train` and then `retrain`; everything read back through the Prefect
client. Every process started here is stopped with its process group, also
when the test fails.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest

from charpipe import localserver, registry

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STAGES = ["download", "encode", "shard", "train", "convert", "evaluate"]
# The smoke preset, made smaller still: this test is about the plumbing.
PARAMS = {"preset": "smoke", "max_chars": 40_000, "units": 16, "epochs": 1,
          "sample_length": 20}
TRAIN_ARTIFACTS = ["charpipe-corpus", "charpipe-vocabulary", "charpipe-shard-layout",
                   "charpipe-training", "charpipe-training-progress",
                   "charpipe-learning-curve", "charpipe-conversion-check",
                   "charpipe-metrics", "charpipe-samples"]


def prefect(*args: str, env: dict, timeout: float = 180) -> str:
    command = [str(Path(sys.executable).with_name("prefect")), "--no-prompt", *args]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{command}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(env, client) of a fresh server with the deployments and a worker."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    workdir = tmp_path_factory.mktemp("prefect-server")
    started = []
    with localserver.running(workdir, started) as (env, _):
        env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
        prefect("work-pool", "create", "charpipe", "--type", "process", env=env)
        prefect("deploy", "--all", env=env)
        started.append(localserver.start(
            [str(Path(sys.executable).with_name("prefect")), "worker", "start",
             "--pool", "charpipe", "--type", "process"], env, workdir / "worker.log",
            cwd=REPO))
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            with get_client(sync_client=True) as client:
                yield env, client, workdir / "worker.log"


def run_deployment(name: str, params: dict, env: dict) -> UUID:
    args = []
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["--param", f"{key}={text}"]
    out = prefect("deployment", "run", name, *args, env=env)
    return UUID(re.search(r"UUID: ([0-9a-f-]{36})", out).group(1))


def wait_final(client, flow_run_id: UUID, log: Path, timeout: float = 420):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} not finished after {timeout} s; "
                f"{log}:\n{log.read_text()[-4000:]}")


def task_states(client, flow_run_id: UUID) -> dict[str, str]:
    from prefect.client.schemas.filters import FlowRunFilter

    runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
    # Task run names are the task's name and a short suffix: "train-2a5".
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs}


def artifacts(client, flow_run_id: UUID) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id={"any_": [flow_run_id]}))
    return {artifact.key: artifact for artifact in found if artifact.key}


def test_train_then_retrain_through_a_worker(server, corpus_path, tmp_path):
    env, client, worker_log = server
    params = {**PARAMS, "source": str(corpus_path),
              "artifacts": str(tmp_path / "artifacts")}

    retrain = client.read_deployment_by_name("retrain/retrain")
    assert retrain.global_concurrency_limit.limit == 1
    [schedule] = retrain.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")

    trained = wait_final(client, run_deployment("train/train", params, env), worker_log)
    assert trained.state.name == "Completed", trained.state.message
    assert task_states(client, trained.id) == {stage: "Completed" for stage in STAGES}
    found = artifacts(client, trained.id)
    assert sorted(found) == sorted(TRAIN_ARTIFACTS)
    assert found["charpipe-training-progress"].data == 100.0
    assert "data:image/svg+xml;base64," in found["charpipe-learning-curve"].data
    assert "temperature" in found["charpipe-samples"].data

    second = wait_final(client, run_deployment("retrain/retrain", params, env),
                        worker_log)
    assert second.state.name == "Completed", second.state.message
    states = task_states(client, second.id)
    assert states == {**{stage: "Cached" for stage in STAGES}, "promote": "Completed"}
    found = artifacts(client, second.id)
    assert "**promoted** to champion" in found["charpipe-promotion"].data
    [row] = json.loads(found["charpipe-registry"].data)
    assert row["decision"] == "promoted" and row["flow_run_id"] == str(second.id)

    champion = registry.champion(Path(params["artifacts"]))
    assert champion["flow_run_id"] == str(second.id)
    evaluated = Path(champion["evaluate"]) / "metrics.json"
    assert champion["test_loss"] == json.loads(evaluated.read_text())["test_loss"]


def test_two_retrains_at_once_leave_one_consistent_registry(server, corpus_path,
                                                            tmp_path):
    env, client, worker_log = server
    root = tmp_path / "artifacts"
    params = {**PARAMS, "source": str(corpus_path), "artifacts": str(root)}
    runs = [run_deployment("retrain/retrain", {**params, "seed": seed}, env)
            for seed in (1, 2)]
    finished = [wait_final(client, run, worker_log) for run in runs]
    assert [run.state.name for run in finished] == ["Completed", "Completed"]

    state = registry.read(root)
    ids = sorted(d["flow_run_id"] for d in state["decisions"])
    assert ids == sorted(map(str, runs))
    first, second = state["decisions"]
    assert first["decision"] == "promoted" and first["champion_loss"] is None
    assert second["champion_model"] == first["candidate"]["model"]
    winner = first if second["decision"] == "rejected" else second
    assert state["champion"]["model"] == winner["candidate"]["model"]


def test_charpipe_serve_runs_both_deployments_without_a_worker(corpus_path, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = []
    with localserver.running(tmp_path / "server", started) as (env, _):
        log = tmp_path / "serve.log"
        # A relative artifact root, from another folder: served runs must
        # still write under it.
        started.append(localserver.start(
            [str(Path(sys.executable).with_name("charpipe")), "serve", "--preset",
             "smoke", "--source", str(corpus_path), "--artifacts", "artifacts"],
            env, log, cwd=tmp_path))
        with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
            with get_client(sync_client=True) as client:
                retrain = wait_deployment(client, "retrain/retrain", log)
                [schedule] = retrain.schedules
                assert schedule.schedule.cron == "0 3 * * *"
                assert retrain.global_concurrency_limit.limit == 1
                wait_deployment(client, "train/train", log)

                overrides = {k: v for k, v in PARAMS.items() if k != "preset"}
                run = wait_final(client, run_deployment("train/train", overrides, env),
                                 log)
                assert run.state.name == "Completed", run.state.message
                assert run.parameters["preset"] == "smoke"
                states = task_states(client, run.id)
                assert states == {stage: "Completed" for stage in STAGES}
    assert (tmp_path / "artifacts" / "evaluate").is_dir()


def wait_deployment(client, name: str, log: Path, timeout: float = 120):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            time.sleep(1)
    pytest.fail(f"{name} was not registered in {timeout} s; {log}:\n"
                f"{log.read_text()[-4000:]}")
