"""The `train` flow: download -> encode -> shard -> train -> convert -> evaluate.

Parameters carry the command line's names; any left as None take the value
of the preset (or charpipe's defaults, the book's hyperparameters).
"""

from typing import Literal

from prefect import flow
from prefect.runtime import flow_run

import tasks
from charpipe import stages
from charpipe.config import resolve, stage_params


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
    root = str(config.root)

    def params(stage):
        return stage_params(config, stage)

    corpus, c1 = tasks.run(tasks.download, root=root, params=params("download"))
    encoded, c2 = tasks.run(tasks.encode, root=root, corpus=corpus,
                            params=params("encode"))
    shards, c3 = tasks.run(tasks.shard, root=root, encoded=encoded,
                           params=params("shard"))
    trained, c4 = tasks.run(tasks.train, root=root, shards=shards, encoded=encoded,
                            params=params("train"))
    converted, c5 = tasks.run(tasks.convert, root=root, trained=trained,
                              encoded=encoded, params=params("convert"))
    evaluated, c6 = tasks.run(tasks.evaluate, root=root, converted=converted,
                              encoded=encoded, params=params("evaluate"))

    refs = [corpus, encoded, shards, trained, converted, evaluated]
    cached = [c1, c2, c3, c4, c5, c6]
    return stages.report(refs, cached, config, flow_run_id=str(flow_run.id))
