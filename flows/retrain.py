"""The `retrain` flow: the train flow's six tasks, then a promotion decision.

With an unchanged corpus and configuration the six tasks are cache hits and
only the decision runs. The new model becomes champion only when its test
loss beats the champion's, on the same test text, by more than `tolerance`.
"""

from typing import Literal

from prefect import flow
from prefect.runtime import flow_run

import tasks
from charpipe import stages
from charpipe.config import resolve
from charpipe.promotion import check_options
from flows.pipeline import run_stages


@flow(name="retrain", log_prints=True)
def retrain(
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
    tolerance: float = 0.0,
    warm_start: bool = False,
    warm_epochs: int | None = None,
) -> dict:
    """`warm_start`: start from the champion's weights when its vocabulary and
    layers fit, training `warm_epochs` epochs (default: a quarter of `epochs`)."""
    overrides = {k: v for k, v in locals().items()
                 if k not in ("preset", "tolerance", "warm_start", "warm_epochs")}
    config = resolve(preset, **overrides)
    check_options(tolerance, warm_epochs)
    refs, cached = run_stages(config, warm_start, warm_epochs)
    run_id = str(flow_run.id)
    decision = tasks.promote(str(config.root), refs, tolerance, run_id)
    return {**stages.report(refs, cached, config, flow_run_id=run_id),
            "decision": decision}
