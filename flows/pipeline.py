"""The six-task chain that both flows run, wired once.

download -> encode -> shard -> train -> convert -> evaluate, each a cached
task; `retrain` may ask train to start from the champion's weights.
"""

import tasks
from charpipe.config import Config, stage_params


def run_stages(config: Config, warm_start: bool = False,
               warm_epochs: int | None = None) -> tuple[list, list[bool]]:
    """Run the chain in the current flow; return the six Refs and cache hits."""
    root = str(config.root)

    def params(stage):
        return stage_params(config, stage)

    corpus, c1 = tasks.run(tasks.download, root=root, params=params("download"))
    encoded, c2 = tasks.run(tasks.encode, root=root, corpus=corpus,
                            params=params("encode"))
    shards, c3 = tasks.run(tasks.shard, root=root, encoded=encoded,
                           params=params("shard"))

    train_params = params("train")
    if warm_start:
        start = tasks.warm_start_from(root, encoded, train_params)
        if start is not None:
            # The starting weights are part of what training produces, so they
            # enter train's key; a cold run's key stays as the train flow's.
            train_params.update(warm_start=start,
                                epochs=warm_epochs or max(1, config.epochs // 4))
    trained, c4 = tasks.run(tasks.train, root=root, shards=shards, encoded=encoded,
                            params=train_params)
    converted, c5 = tasks.run(tasks.convert, root=root, trained=trained,
                              encoded=encoded, params=params("convert"))
    evaluated, c6 = tasks.run(tasks.evaluate, root=root, converted=converted,
                              encoded=encoded, params=params("evaluate"))
    return ([corpus, encoded, shards, trained, converted, evaluated],
            [c1, c2, c3, c4, c5, c6])
