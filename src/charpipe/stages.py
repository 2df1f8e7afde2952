"""The six pipeline stages as plain functions over the artifact store.

Each stage takes the `Ref`s of the folders it reads and its own parameters,
and returns the `Ref` of the folder it wrote. `key` tells, without doing any
work or importing TensorFlow, which folder a stage would write; a stage whose
folder is already there and intact returns it as it is.
"""

import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path

from charpipe.errors import CharpipeError
from charpipe import corpus, encoding, sharding, store
from charpipe.store import Ref


log = logging.getLogger(__name__)

CORPUS_FILE = "corpus.txt"
MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.json"
# Held-out text is read as this many contiguous streams in one batch.
HELDOUT_STREAMS = 32

# Library modules whose source decides each stage's output.
MODULES = {
    "download": ("corpus", "stages"),
    "encode": ("encoding", "stages"),
    "shard": ("sharding", "stages"),
    "train": ("training", "model", "gru", "sharding", "stages"),
    "convert": ("model", "stages"),
    "evaluate": ("model", "sampling", "stages"),
}
STAGES = tuple(MODULES)


def key_params(stage: str, params: dict) -> dict:
    """The parameters a stage's key covers, with what identifies its source."""
    if stage != "download":
        return params
    keyed = {"source": corpus.fingerprint(params["source"]),
             "sha256": params.get("sha256")}
    if keyed["sha256"] is None and "url" in keyed["source"]:
        # An unpinned URL may change behind our back: look again once per TTL.
        keyed["fetched_window"] = int(time.time() // (params["source_ttl_hours"] * 3600))
    return keyed


def key(stage: str, inputs: list[Ref], params: dict) -> str:
    return store.stage_key(stage, store.code_version(*MODULES[stage]),
                           {ref.stage: ref.digest for ref in inputs},
                           key_params(stage, params))


def _existing(root: Path, stage: str, key_: str, logger) -> Ref | None:
    folder = store.stage_dir(root, stage, key_)
    if store.verify(folder) is None:
        logger.info("%s: reusing %s", stage, folder)
        return store.ref_for(root, stage, key_, _digest(stage, folder))
    return None


def _digest(stage: str, folder: Path) -> str | None:
    # Downstream keys follow the corpus's content, not where it came from.
    if stage == "download":
        return store.read_manifest(folder)["files"][CORPUS_FILE]["sha256"]
    return None


def _manifest_inputs(inputs: list[Ref]) -> dict:
    return {ref.stage: {"key": ref.key, "digest": ref.digest, "path": ref.path}
            for ref in inputs}


def _once(root: Path, stage: str, inputs: list[Ref], params: dict, logger,
          build) -> Ref:
    """The stage's folder: reused when intact, else built by `build(key)`.

    The stage key's lock is held throughout, so a second run of the same
    configuration waits for the first and reuses its folder.
    """
    key_ = key(stage, inputs, params)
    with store.claim(root, stage, key_):
        if found := _existing(root, stage, key_, logger):
            return found
        return build(key_)


def download(root: Path, params: dict, logger=log) -> Ref:
    """Stage 1: the corpus bytes, verified against the pinned sha256."""
    def build(key_: str) -> Ref:
        keyed = key_params("download", params)
        with store.building(root, "download", key_, {}, keyed) as out:
            digest = corpus.fetch(params["source"], out / CORPUS_FILE,
                                  params.get("sha256"))
            logger.info("corpus: %s, %d bytes, sha256 %s", params["source"],
                        (out / CORPUS_FILE).stat().st_size, digest)
        return store.ref_for(root, "download", key_, digest)

    return _once(root, "download", [], params, logger, build)


def encode(root: Path, corpus_ref: Ref, params: dict, logger=log) -> Ref:
    """Stage 2: vocabulary and ids as Parquet, with the split sizes."""
    inputs = [corpus_ref]

    def build(key_: str) -> Ref:
        with store.building(root, "encode", key_, _manifest_inputs(inputs),
                            params) as out:
            meta = encoding.write_file(
                out, corpus_ref.folder / CORPUS_FILE, corpus_ref.digest,
                params["val_fraction"], params["test_fraction"], params["lowercase"],
                params["max_chars"], params["decode_errors"],
                name=_source_name(corpus_ref))
            if meta["vocab_size"] < 2:
                [char] = encoding.read_vocab(out)
                raise encoding.EncodingError(
                    f"the corpus is one character, {char!r}, repeated "
                    f"{meta['n_chars']} times: there is nothing to learn. Point "
                    "--source at a real text.")
            logger.info("encode: %d characters, vocabulary of %d, splits %s",
                        meta["n_chars"], meta["vocab_size"], meta["splits"])
        return store.ref_for(root, "encode", key_)

    return _once(root, "encode", inputs, params, logger, build)


def _source_name(corpus_ref: Ref) -> str:
    """Where the corpus came from, for messages about its text."""
    source = store.read_manifest(corpus_ref.folder)["params"]["source"]
    return source.get("path") or source.get("url") or str(corpus_ref.folder)


def shard(root: Path, encoded: Ref, params: dict, logger=log) -> Ref:
    """Stage 3: contiguous training batches for the stateful model."""
    inputs = [encoded]

    def build(key_: str) -> Ref:
        with store.building(root, "shard", key_, _manifest_inputs(inputs),
                            params) as out:
            n_train = encoding.read_meta(encoded.folder)["splits"]["train"]
            layout = sharding.plan(n_train, params["batch_size"], params["n_steps"])
            # Train ids are the first n_train: read in stretches, never all at once.
            ids = encoding.IdsReader(encoded.folder, keep=2 * layout.batch_size + 2)
            sharding.write(out / sharding.TRAIN_FILE, ids, layout)
            logger.info("shard: %d batches of %d x %d, %d characters dropped",
                        layout.n_batches, layout.batch_size, layout.n_steps + 1,
                        layout.dropped)
        return store.ref_for(root, "shard", key_)

    return _once(root, "shard", inputs, params, logger, build)


def heldout_rows(encoded: Ref, part: str, batch_size: int):
    return sharding.streams(encoding.read_ids(encoded.folder, part), batch_size)


def train(root: Path, shards: Ref, encoded: Ref, params: dict, logger=log,
          on_epoch=None) -> Ref:
    """Stage 4: the stateful model, trained with a state reset every epoch."""
    inputs = [shards, encoded]

    def build(key_: str) -> Ref:
        from charpipe import training

        windows, layout = sharding.read(shards.folder / sharding.TRAIN_FILE)
        # The same streams evaluate reads, so both report one val_loss.
        val_rows = heldout_rows(encoded, "val", HELDOUT_STREAMS)
        vocab_size = encoding.read_meta(encoded.folder)["vocab_size"]
        workdir = store.stage_dir(root, "train", f".work-{key_}")
        model, history = training.train(windows, val_rows, vocab_size, params,
                                         workdir, logger, on_epoch)
        with store.building(root, "train", key_, _manifest_inputs(inputs),
                            params) as out:
            model.save(out / MODEL_FILE)
            store.write_json(out / "history.json", history)
        shutil.rmtree(workdir, ignore_errors=True)
        return store.ref_for(root, "train", key_)

    return _once(root, "train", inputs, params, logger, build)


def convert(root: Path, trained: Ref, encoded: Ref, params: dict, logger=log,
            tolerance: float = 1e-5) -> Ref:
    """Stage 5: a stateless copy for any batch size, checked against the original."""
    inputs = [trained, encoded]

    def build(key_: str) -> Ref:
        from charpipe import model as char_model

        stateful = char_model.load(trained.folder / MODEL_FILE)
        stateless = char_model.to_stateless(stateful)
        check = equivalence(stateful, stateless, encoded, tolerance)
        logger.info("convert: max |stateless - stateful| = %.3g on a held-out batch "
                    "(tolerance %g)", check["max_abs_diff"], tolerance)
        if not check["passed"]:
            raise ConversionError(
                f"the stateless model differs from the stateful one by "
                f"{check['max_abs_diff']:.3g} > {tolerance}; it was not saved")
        with store.building(root, "convert", key_, _manifest_inputs(inputs),
                            params) as out:
            stateless.save(out / MODEL_FILE)
            store.write_json(out / VOCAB_FILE, encoding.read_vocab(encoded.folder))
            store.write_json(out / "check.json", check)
        return store.ref_for(root, "convert", key_)

    return _once(root, "convert", inputs, params, logger, build)


class ConversionError(CharpipeError, RuntimeError):
    """The stateless copy does not compute what the trained model computes."""


def equivalence(stateful, stateless, encoded: Ref, tolerance: float) -> dict:
    """Compare both models on the first held-out batch, states reset."""
    from charpipe import model as char_model

    batch_size = stateful.inputs[0].shape[0]
    rows = heldout_rows(encoded, "val", batch_size)
    n_steps = min(100, rows.shape[1])
    x = rows[:, :n_steps].astype("int32")
    char_model.reset_states(stateful)
    expected = stateful.predict(x, batch_size=batch_size, verbose=0)
    char_model.reset_states(stateful)
    got = stateless.predict(x, batch_size=batch_size, verbose=0)
    diff = float(abs(expected - got).max())
    return {"batch_shape": list(x.shape), "max_abs_diff": diff,
            "tolerance": tolerance, "passed": diff <= tolerance}


def evaluate(root: Path, converted: Ref, encoded: Ref, params: dict, logger=log) -> Ref:
    """Stage 6: held-out loss, bits per character, accuracy and samples."""
    inputs = [converted, encoded]

    def build(key_: str) -> Ref:
        from charpipe import model as char_model
        from charpipe import sampling

        model = char_model.load(converted.folder / MODEL_FILE)
        vocab = encoding.read_vocab(encoded.folder)
        metrics = heldout_metrics(model, encoded, len(vocab))
        logger.info("evaluate: val_loss %.4f nats/char (%.3f bits/char), accuracy "
                    "%.3f; uniform guess %.4f", metrics["val_loss"],
                    metrics["val_bits_per_char"], metrics["val_accuracy"],
                    metrics["uniform_loss"])
        samples = []
        for temperature in params["temperatures"]:
            [text] = sampling.complete(model, vocab, params["prompt"],
                                       params["sample_length"], temperature,
                                       params["seed"])
            samples.append({"temperature": temperature,
                            "prompt": sampling.reading(params["prompt"], vocab),
                            "text": text})
        with store.building(root, "evaluate", key_, _manifest_inputs(inputs),
                            params) as out:
            store.write_json(out / "metrics.json", metrics)
            store.write_json(out / "samples.json", samples)
            (out / "samples.md").write_text(samples_markdown(samples))
        return store.ref_for(root, "evaluate", key_)

    return _once(root, "evaluate", inputs, params, logger, build)


def heldout_metrics(model, encoded: Ref, vocab_size: int) -> dict:
    """Loss (nats and bits per character) and accuracy on validation and test."""
    from charpipe import model as char_model

    metrics = {"vocab_size": vocab_size, "uniform_loss": math.log(vocab_size)}
    for part in ("val", "test"):
        rows = heldout_rows(encoded, part, HELDOUT_STREAMS)
        loss, accuracy = char_model.heldout_loss(model, rows)
        metrics.update({f"{part}_loss": loss, f"{part}_bits_per_char": loss / math.log(2),
                        f"{part}_accuracy": accuracy})
    return metrics


def samples_markdown(samples: list[dict]) -> str:
    parts = ["# Samples\n"]
    for sample in samples:
        parts.append(f"## temperature {sample['temperature']}\n")
        body = (sample["prompt"] + sample["text"]).replace("```", "` ` `")
        parts.append(f"```text\n{body}\n```\n")
    return "\n".join(parts)


def report(refs: list[Ref], cached: list[bool], config, flow_run_id: str) -> dict:
    """What a run produced: metrics, samples, every stage's folder, cache hits."""
    evaluated = refs[-1]
    metrics = store.read_json(evaluated.folder / "metrics.json")
    return {
        "flow_run_id": flow_run_id,
        "val_loss": metrics["val_loss"],
        "bits_per_char": metrics["val_bits_per_char"],
        "metrics": metrics,
        "samples": store.read_json(evaluated.folder / "samples.json"),
        "artifacts": {ref.stage: ref.path for ref in refs},
        "cached": {ref.stage: hit for ref, hit in zip(refs, cached)},
        "model": str(refs[-2].folder),
        "config": dataclasses.asdict(config),
    }
