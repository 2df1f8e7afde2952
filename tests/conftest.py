"""Shared fixtures. Prefect and TensorFlow settings are fixed here, before
either is imported, so no test run touches ~/.prefect or another run's state."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="charpipe-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get(
    "CHARPIPE_CORPUS", REPO.parent / "shared" / "data" / "tinyshakespeare.txt"))


@pytest.fixture(scope="session")
def corpus_path() -> Path:
    if not CORPUS.is_file():
        pytest.fail(f"the real corpus is not at {CORPUS}; point CHARPIPE_CORPUS at a "
                    "copy of tiny Shakespeare")
    return CORPUS


@pytest.fixture(scope="session")
def shakespeare(corpus_path) -> str:
    return corpus_path.read_text(encoding="utf-8")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
