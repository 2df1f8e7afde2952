"""The benchmark runs at a tiny size and reports every figure; no speed is asserted."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_quick_benchmark_writes_every_figure(tmp_path, corpus_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "CHARPIPE_CORPUS": str(corpus_path)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only",
         "train,generate,data", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| training | chars/s |" in done.stdout

    results = json.loads(out.read_text())
    assert results["machine_start"]["cpus"] == os.cpu_count()
    assert len(results["machine_end"]["loadavg"]) == 3
    names = [row["name"] for row in results["figures"]]
    assert names[0] == "training" and "time of 64 samples / time of 1" in names
    assert any(name.startswith("encode, generated corpus") for name in names)
    for row in results["figures"]:
        runs = row["charpipe"]["runs"]
        assert runs and all(value > 0 for value in runs), row["name"]
        if row["reference"] is not None:
            assert row["ratio"] > 0
    training = results["figures"][0]
    assert training["reference"]["runs"] and training["section"] == "train"


def test_unknown_section_is_refused():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "trian"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "trian" in done.stderr
