#!/usr/bin/env python3
"""Screenshots of charpipe's artifacts in the Prefect UI, from a real run.

Starts a throwaway `prefect server start` on a free port of 127.0.0.1 (its own
PREFECT_HOME, analytics off), runs `charpipe retrain` against it twice on a
small configuration (a champion, then a one-epoch model it should beat), then
opens the first flow run's page, each of its artifacts' pages and the second
run's promotion decision and registry in headless Chromium and saves PNGs. The server is
stopped at the end.

    python scripts/screenshot_artifacts.py --source ../shared/data/tinyshakespeare.txt

Needs `chromium` (Debian: `apt-get install chromium`) and charpipe installed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from charpipe import localserver

KEYS = ["charpipe-learning-curve", "charpipe-training-progress", "charpipe-samples",
        "charpipe-conversion-check", "charpipe-metrics", "charpipe-promotion",
        "charpipe-registry"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    sys.exit(f"none of {BROWSERS} is installed; on Debian: apt-get install chromium")


def artifacts_of(port: int, flow_run_id: str) -> dict[str, str]:
    """Artifact key -> id, for the artifacts this flow run published."""
    body = json.dumps({"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/artifacts/filter", data=body,
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return {a["key"]: a["id"] for a in json.load(response) if a["key"]}


def screenshot(chromium: str, url: str, path: Path, height: int) -> None:
    # The UI is a JavaScript app: give it virtual time to fetch and render.
    command = [chromium, "--headless", "--disable-gpu", "--hide-scrollbars",
               f"--window-size=1280,{height}", "--virtual-time-budget=15000",
               f"--screenshot={path}", url]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses root otherwise
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    print(f"{path}  <-  {url}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="path of the corpus")
    parser.add_argument("--out", default="screenshots", help="folder for the PNGs")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--height", type=int, default=1000, help="window height")
    args = parser.parse_args()
    chromium = browser()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    workdir = Path(tempfile.mkdtemp(prefix="charpipe-screenshots-"))
    with localserver.running(workdir) as (env, port):
        base = f"http://127.0.0.1:{port}"
        # A champion first, then a model of one epoch that it should beat.
        first = retrain(env, args.source, workdir, args.epochs)
        second = retrain(env, args.source, workdir, 1)
        screenshot(chromium, f"{base}/runs/flow-run/{first}", out / "flow-run.png",
                   args.height)
        decision = ["charpipe-promotion", "charpipe-registry"]
        for run, keys, suffix in ((first, KEYS, ""), (second, decision, "-second-run")):
            found = artifacts_of(port, run)
            for key in keys:
                if key not in found:
                    sys.exit(f"the run published no artifact {key!r}; "
                             f"it has {sorted(found)}")
                screenshot(chromium, f"{base}/artifacts/artifact/{found[key]}",
                           out / f"{key}{suffix}.png", args.height)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def retrain(env: dict, source: str, workdir: Path, epochs: int) -> str:
    """Run `charpipe retrain` against the server; return its flow run id."""
    charpipe = str(Path(sys.executable).with_name("charpipe"))
    run = subprocess.run(
        [charpipe, "retrain", "--preset", "smoke", "--source", source,
         "--artifacts", str(workdir / "artifacts"), "--max-chars", "60000",
         "--units", "32", "--epochs", str(epochs), "--json"],
        env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        sys.exit(f"charpipe retrain failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])["flow_run_id"]


if __name__ == "__main__":
    sys.exit(main())
