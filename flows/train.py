"""The `train` flow: download -> encode -> shard -> train -> convert -> evaluate.

Parameters carry the command line's names; any left as None take the value
of the preset (or charpipe's defaults, the book's hyperparameters).
"""

from typing import Literal

from prefect import flow
from prefect.runtime import flow_run

from charpipe import stages
from charpipe.config import resolve
from flows.pipeline import run_stages


@flow(name="train", log_prints=True)
def train(
    preset: str | None = None,
    source: str | None = None,
    sha256: str | None = None,
    artifacts: str | None = None,
    lowercase: bool | None = None,
    decode_errors: Literal["strict", "replace"] | None = None,
    max_chars: int | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    batch_size: int | None = None,
    n_steps: int | None = None,
    units: int | None = None,
    n_layers: int | None = None,
    dropout: float | None = None,
    recurrent_dropout: float | None = None,
    learning_rate: float | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    prompt: str | None = None,
    sample_length: int | None = None,
    temperatures: list[float] | None = None,
) -> dict:
    overrides = {k: v for k, v in locals().items() if k != "preset"}
    config = resolve(preset, **overrides)
    refs, cached = run_stages(config)
    return stages.report(refs, cached, config, flow_run_id=str(flow_run.id))
