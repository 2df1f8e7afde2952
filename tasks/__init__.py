"""Prefect tasks: the library's stages with caching, retries and artifacts."""

from tasks.promotion import promote, warm_start_from
from tasks.stages import convert, download, encode, evaluate, shard, train


def run(task, **kwargs):
    """Run a task in the current flow; return (its Ref, whether it was cached)."""
    state = task(**kwargs, return_state=True)
    return state.result(), state.name == "Cached"


__all__ = ["convert", "download", "encode", "evaluate", "promote", "run", "shard",
           "train", "warm_start_from"]
