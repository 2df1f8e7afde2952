"""Prefect tasks around the library's stages: caching, retries, logs, artifacts.

Every task is cached on its stage key (the inputs' digests, its parameters and
the code version) plus the artifact root. A cache entry only stands while its
folder is intact: when the folder is gone or damaged, the key function sends
the run to a fresh key so the stage is rebuilt instead of trusted.
"""

import hashlib
import json
from pathlib import Path

from prefect import task
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from prefect.logging import get_run_logger

from charpipe import plots, stages, store
from charpipe.corpus import TransientError
from charpipe.store import Ref


def _cache_key(stage: str, *input_names: str):
    def cache_key_fn(context, parameters: dict) -> str:
        root = Path(parameters["root"])
        inputs = [parameters[name] for name in input_names]
        key = stages.key(stage, inputs, parameters["params"])
        root_tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
        cache_key = f"charpipe-{stage}-{key}-{root_tag}"

        problem = store.verify(store.stage_dir(root, stage, key))
        if problem is not None and context.result_store.exists(cache_key):
            get_run_logger().warning(
                "%s: cached folder %s is %s; rebuilding it", stage,
                store.stage_dir(root, stage, key), problem)
            return f"{cache_key}-rebuild-{context.task_run.id}"
        return cache_key

    return cache_key_fn


def _is_transient(task, task_run, state) -> bool:
    return isinstance(state.data, TransientError)


CACHED = {"persist_result": True}


@task(name="download", cache_key_fn=_cache_key("download"), retries=3,
      retry_delay_seconds=[2, 10, 30], retry_condition_fn=_is_transient, **CACHED)
def download(root: str, params: dict) -> Ref:
    ref = stages.download(Path(root), params, get_run_logger())
    size = (ref.folder / stages.CORPUS_FILE).stat().st_size
    create_markdown_artifact(
        key="charpipe-corpus",
        markdown=(f"# Corpus\n\n| source | bytes | sha256 |\n|---|---|---|\n"
                  f"| `{params['source']}` | {size:,} | `{ref.digest}` |\n\n"
                  f"Stored in `{ref.path}`.\n"),
        description="The corpus this run trained on")
    return ref


@task(name="encode", cache_key_fn=_cache_key("encode", "corpus"), **CACHED)
def encode(root: str, corpus: Ref, params: dict) -> Ref:
    from charpipe import encoding

    ref = stages.encode(Path(root), corpus, params, get_run_logger())
    meta = encoding.read_meta(ref.folder)
    vocab = encoding.read_vocab(ref.folder)
    rows = "\n".join(f"| {i} | `{json.dumps(c)[1:-1]}` |" for i, c in enumerate(vocab))
    splits = meta["splits"]
    create_markdown_artifact(
        key="charpipe-vocabulary",
        markdown=(f"# Encoded corpus\n\n{meta['n_chars']:,} characters, a vocabulary "
                  f"of {meta['vocab_size']}; train {splits['train']:,}, validation "
                  f"{splits['val']:,}, test {splits['test']:,}.\n\n"
                  f"| id | character |\n|---|---|\n{rows}\n"),
        description="Vocabulary and split sizes")
    return ref


@task(name="shard", cache_key_fn=_cache_key("shard", "encoded"), **CACHED)
def shard(root: str, encoded: Ref, params: dict) -> Ref:
    from charpipe import sharding

    ref = stages.shard(Path(root), encoded, params, get_run_logger())
    layout = sharding.read_layout(ref.folder / sharding.TRAIN_FILE)
    create_table_artifact(
        key="charpipe-shard-layout",
        table=[{"batch_size": layout.batch_size, "n_steps": layout.n_steps,
                "n_batches": layout.n_batches, "stream_length": layout.stream_length,
                "train_chars": layout.n_ids, "dropped_chars": layout.dropped}],
        description="Contiguous batches: slot i of batch k+1 continues slot i of batch k")
    return ref


@task(name="train", cache_key_fn=_cache_key("train", "shards", "encoded"), **CACHED)
def train(root: str, shards: Ref, encoded: Ref, params: dict) -> Ref:
    epochs = params["epochs"]
    progress = create_progress_artifact(
        progress=0.0, key="charpipe-training-progress",
        description=f"Epochs done out of {epochs}")

    def on_epoch(row: dict) -> None:
        update_progress_artifact(progress, progress=100.0 * row["epoch"] / epochs,
                                 description=f"Epoch {row['epoch']} of {epochs}")

    ref = stages.train(Path(root), shards, encoded, params, get_run_logger(), on_epoch)
    update_progress_artifact(progress, progress=100.0,
                             description=f"{epochs} of {epochs} epochs")
    history = json.loads((ref.folder / "history.json").read_text())
    create_table_artifact(key="charpipe-training", table=history,
                          description="Loss and held-out loss per epoch (nats/char)")
    create_markdown_artifact(key="charpipe-learning-curve",
                             markdown=plots.learning_curve_markdown(history),
                             description="Training and held-out loss per epoch")
    return ref


@task(name="convert", cache_key_fn=_cache_key("convert", "trained", "encoded"),
      **CACHED)
def convert(root: str, trained: Ref, encoded: Ref, params: dict) -> Ref:
    ref = stages.convert(Path(root), trained, encoded, params, get_run_logger())
    check = json.loads((ref.folder / "check.json").read_text())
    create_markdown_artifact(
        key="charpipe-conversion-check",
        markdown=(f"# Stateless conversion\n\nOn a held-out batch of shape "
                  f"{check['batch_shape']}, the largest difference between the "
                  f"stateless and the stateful model (states reset) is "
                  f"**{check['max_abs_diff']:.3g}** (tolerance {check['tolerance']:g}): "
                  f"{'passed' if check['passed'] else 'FAILED'}.\n"),
        description="Stateless model checked against the trained stateful one")
    return ref


@task(name="evaluate", cache_key_fn=_cache_key("evaluate", "converted", "encoded"),
      **CACHED)
def evaluate(root: str, converted: Ref, encoded: Ref, params: dict) -> Ref:
    ref = stages.evaluate(Path(root), converted, encoded, params, get_run_logger())
    metrics = json.loads((ref.folder / "metrics.json").read_text())
    create_table_artifact(
        key="charpipe-metrics",
        table=[{"metric": k, "value": round(v, 4) if isinstance(v, float) else v}
               for k, v in metrics.items()],
        description="Held-out loss (nats/char), bits/char and accuracy")
    create_markdown_artifact(key="charpipe-samples",
                             markdown=(ref.folder / "samples.md").read_text(),
                             description="Samples at several temperatures")
    return ref
