"""A throwaway Prefect server on 127.0.0.1, for the deployment test and the
screenshot script: its own PREFECT_HOME, a free port, analytics off, and every
process it starts stopped again, with its whole process group.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from charpipe.errors import CharpipeError


class ServerError(CharpipeError, RuntimeError):
    """The local Prefect server did not come up."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(home: Path, port: int) -> dict:
    """The environment of every process that talks to this server."""
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        # The UI asks the server where the API is; without this it says 4200.
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    })
    return env


def start(args: list[str], env: dict, log: Path, cwd: Path | None = None):
    """Start a command in its own process group, its output into `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(args, env=env, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started by `start`, and everything it started."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(port: int, proc: subprocess.Popen, log: Path,
                 timeout: float = 120.0) -> None:
    url = f"http://127.0.0.1:{port}/api/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"prefect server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerError(f"prefect server did not answer {url} in {timeout:.0f} s; "
                      f"see {log}")


@contextmanager
def running(workdir: Path, started: list | None = None):
    """Yield (env, port) of a fresh server under `workdir`; stop it afterwards.

    Processes appended to `started` are stopped too, last started first.
    """
    started = [] if started is None else started
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = environment(workdir / "prefect-home", port)
    prefect = str(Path(sys.executable).with_name("prefect"))
    log = workdir / "server.log"
    try:
        server = start([prefect, "server", "start", "--host", "127.0.0.1",
                        "--port", str(port)], env, log)
        started.insert(0, server)
        wait_healthy(port, server, log)
        yield env, port
    finally:
        for proc in reversed(started):
            stop(proc)
