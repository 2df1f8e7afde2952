"""Faults and bad input.

Each case asserts two things: the message names the cause and the way out,
and the artifact root afterwards holds nothing half-written and has lost
nothing it held before.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from charpipe import config, encoding, sharding, stages, store
from charpipe.encoding import EncodingError
from charpipe.sharding import ShardError

TINY = {"batch_size": 4, "n_steps": 10, "units": 8, "n_layers": 1, "epochs": 1,
        "sample_length": 5}
TEXT = "to be, or not to be, that is the question:\n" * 40


def params(stage: str, **overrides) -> dict:
    values = {"source": "unused", **TINY, **overrides}
    return config.stage_params(config.resolve(**values), stage)


def published(root: Path, stage: str) -> list[str]:
    folder = root / stage
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def half_written(root: Path) -> list[Path]:
    return [p for p in root.rglob("*")
            if p.name.startswith(".building-") or p.name.endswith(".part")]


def encode_bytes(root: Path, tmp_path: Path, data: bytes, **overrides):
    source = tmp_path / "corpus.txt"
    source.write_bytes(data)
    corpus = stages.download(root, params("download", source=str(source)))
    return corpus, stages.encode(root, corpus, params("encode", **overrides))


# --- input text -----------------------------------------------------------


def test_an_empty_corpus_is_refused_and_nothing_is_encoded(tmp_path):
    root = tmp_path / "artifacts"
    with pytest.raises(EncodingError, match="empty"):
        encode_bytes(root, tmp_path, b"")
    assert published(root, "encode") == [] and half_written(root) == []
    assert len(published(root, "download")) == 1


def test_a_corpus_of_one_repeated_character_is_refused(tmp_path):
    root = tmp_path / "artifacts"
    with pytest.raises(EncodingError, match=r"one character, '\\n', repeated 5000"):
        encode_bytes(root, tmp_path, b"\n" * 5000)
    assert published(root, "encode") == [] and half_written(root) == []


def test_a_local_corpus_edited_in_place_is_a_new_corpus(tmp_path):
    # Same size, same modification time, other bytes: still noticed.
    root = tmp_path / "artifacts"
    old, _ = encode_bytes(root, tmp_path, TEXT.encode())
    source = tmp_path / "corpus.txt"
    stat = source.stat()
    source.write_bytes(TEXT.replace("question", "QUESTION").encode())
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new = stages.download(root, params("download", source=str(source)))
    assert new.digest != old.digest and store.verify(old.folder) is None


def test_a_corpus_too_short_for_one_batch_gives_both_numbers(tmp_path):
    root = tmp_path / "artifacts"
    _, encoded = encode_bytes(root, tmp_path, b"a short text\n" * 10)
    n_train = encoding.read_meta(encoded.folder)["splits"]["train"]
    with pytest.raises(ShardError) as info:
        stages.shard(root, encoded, params("shard", batch_size=32, n_steps=100))
    assert f"has {n_train} characters" in str(info.value)
    assert "3232 needed" in str(info.value) and "--batch-size" in str(info.value)
    assert published(root, "shard") == [] and half_written(root) == []


def test_bytes_that_are_not_utf8_are_refused_or_replaced_on_request(tmp_path):
    root = tmp_path / "artifacts"
    data = TEXT.encode() + b"caf\xe9 " + TEXT.encode()
    with pytest.raises(EncodingError) as info:
        encode_bytes(root, tmp_path, data)
    offset = len(TEXT.encode()) + 3
    assert f"byte {offset} is 0xe9" in str(info.value)
    assert "--decode-errors replace" in str(info.value)
    assert published(root, "encode") == []

    _, encoded = encode_bytes(root, tmp_path, data, decode_errors="replace")
    assert "\ufffd" in encoding.read_vocab(encoded.folder)


def test_a_binary_file_is_refused_with_the_offset_of_its_first_nul(tmp_path):
    root = tmp_path / "artifacts"
    with pytest.raises(EncodingError, match="NUL byte at offset 5"):
        encode_bytes(root, tmp_path, b"\x89PNG\r\x00\x00\x00" + bytes(range(256)))
    with pytest.raises(EncodingError, match="NUL byte at offset 1"):
        encode_bytes(root, tmp_path, TEXT[:50].encode("utf-16-le"))
    assert published(root, "encode") == []


def test_a_byte_order_mark_is_dropped_and_windows_newlines_normalised(tmp_path):
    root = tmp_path / "artifacts"
    windows_text = "\ufeff" + TEXT.replace("\n", "\r\n")
    _, encoded = encode_bytes(root, tmp_path, windows_text.encode())
    vocab = encoding.read_vocab(encoded.folder)
    assert "\ufeff" not in vocab and "\r" not in vocab
    assert encoding.decode(encoding.read_ids(encoded.folder), vocab) == TEXT


def test_a_vocabulary_beyond_255_characters_widens_the_ids(tmp_path):
    root = tmp_path / "artifacts"
    text = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300)) + "😀 naïve ∑\n"
    _, encoded = encode_bytes(root, tmp_path, (text * 3).encode(), lowercase=False)
    ids = encoding.read_ids(encoded.folder)
    assert ids.dtype == np.uint16
    assert encoding.decode(ids, encoding.read_vocab(encoded.folder)) == text * 3


def test_a_corpus_changed_at_the_same_url_gets_new_folders_and_keeps_the_old(
        tmp_path, corpus_server):
    root = tmp_path / "artifacts"
    url = corpus_server.url + "/changing.txt"
    # An unpinned URL is looked at again once per TTL: one second here.
    download = params("download", source=url, source_ttl_hours=1 / 3600)
    encode = params("encode")

    corpus_server.files["/changing.txt"] = TEXT.encode()
    old_corpus = stages.download(root, download)
    old = stages.encode(root, old_corpus, encode)
    time.sleep(1.1)
    changed = TEXT + "whether 'tis nobler in the mind to suffer\n"
    corpus_server.files["/changing.txt"] = changed.encode()
    new_corpus = stages.download(root, download)
    new = stages.encode(root, new_corpus, encode)

    assert new_corpus.digest != old_corpus.digest and new.key != old.key
    for ref in (old_corpus, old, new_corpus, new):
        assert store.verify(ref.folder) is None
    for ref, text in ((old, TEXT), (new, changed)):
        vocab = encoding.read_vocab(ref.folder)
        assert encoding.decode(encoding.read_ids(ref.folder), vocab) == text
    assert len(published(root, "encode")) == 2


# --- files ------------------------------------------------------------------


def test_an_edited_artifact_is_set_aside_and_rebuilt_not_loaded(tmp_path):
    root = tmp_path / "artifacts"
    corpus, encoded = encode_bytes(root, tmp_path, TEXT.encode())
    ids_file = encoded.folder / encoding.IDS_FILE
    data = bytearray(ids_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    ids_file.write_bytes(bytes(data))

    again = stages.encode(root, corpus, params("encode"))
    assert again.key == encoded.key and store.verify(again.folder) is None
    aside = [p for p in (root / "encode").iterdir() if p.name.startswith(".damaged-")]
    assert len(aside) == 1


def _without_root_privilege() -> list[str]:
    # root writes through any mode bits; without these two capabilities it
    # meets a read-only folder as everyone else does.
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_artifact_root_that_is_not_writable_is_named(tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text(TEXT)
    root = tmp_path / "artifacts"
    root.mkdir(mode=0o555)
    root.chmod(0o555)
    download = params("download", source=str(source))
    script = f"from charpipe import stages; stages.download({str(root)!r}, {download!r})"
    try:
        out = subprocess.run([*_without_root_privilege(), sys.executable, "-c", script],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0
        assert f"cannot write artifacts under {root}" in out.stderr
        assert "--artifacts" in out.stderr
        assert list(root.iterdir()) == []
    finally:
        root.chmod(0o755)


def test_running_out_of_space_publishes_nothing(tmp_path, shakespeare):
    root = tmp_path / "artifacts"
    source = tmp_path / "corpus.txt"
    source.write_text(shakespeare[:300_000])
    corpus = stages.download(root, params("download", source=str(source)))
    script = textwrap.dedent(f"""
        import resource, signal
        from charpipe import stages
        from charpipe.store import Ref
        # The kernel refuses writes past this size, as a full disk would.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))
        stages.encode({str(root)!r}, Ref(**{corpus.to_dict()!r}), {params('encode')!r})
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0
    assert "ran out of space while writing" in out.stderr and "--artifacts" in out.stderr
    assert published(root, "encode") == [] and half_written(root) == []
    assert store.verify(corpus.folder) is None


@pytest.mark.slow
def test_two_runs_of_one_configuration_at_once_both_finish(tmp_path, corpus_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    charpipe = str(Path(sys.executable).parent / "charpipe")
    command = [charpipe, "run", "--source", str(corpus_path), "--artifacts",
               str(tmp_path / "artifacts"), "--max-chars", "40000", "--batch-size", "8",
               "--n-steps", "30", "--units", "16", "--epochs", "2",
               "--sample-length", "20", "--json"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for _ in range(2)]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    first, second = results
    assert first["artifacts"] == second["artifacts"]
    assert first["val_loss"] == second["val_loss"]
    for folder in first["artifacts"].values():
        assert store.verify(folder) is None
    root = tmp_path / "artifacts"
    for stage in stages.STAGES:
        assert len(published(root, stage)) == 1
    assert half_written(root) == [] and not list((root / "train").glob(".work-*"))


# --- training ---------------------------------------------------------------

PIPELINE = textwrap.dedent("""
    import json, logging, sys
    from charpipe import config, stages
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root, source = sys.argv[1], sys.argv[2]
    cfg = config.resolve(source=source, max_chars=60_000, batch_size=8, n_steps=20,
                         units=16, n_layers=1, epochs=6)
    p = lambda stage: config.stage_params(cfg, stage)
    corpus = stages.download(root, p("download"))
    encoded = stages.encode(root, corpus, p("encode"))
    shards = stages.shard(root, encoded, p("shard"))
    trained = stages.train(root, shards, encoded, p("train"))
    print(json.dumps(json.load(open(trained.folder / "history.json"))))
""")


def _start_training(root: Path, corpus_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PIPELINE, str(root), str(corpus_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_done(root: Path) -> int:
    progress = list((root / "train").glob(".work-*/progress.json"))
    return json.loads(progress[0].read_text())["epochs_done"] if progress else 0


def _wait_for_epoch(root: Path, process: subprocess.Popen, epoch: int) -> None:
    deadline = time.monotonic() + 300
    while _epochs_done(root) < epoch:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.05)


def test_training_interrupted_or_killed_resumes_from_its_last_epoch(tmp_path,
                                                                    corpus_path):
    import keras

    import charpipe.gru  # noqa: F401  (checkpoints hold FastGRU layers)

    root = tmp_path / "artifacts"

    first = _start_training(root, corpus_path)
    _wait_for_epoch(root, first, 1)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = first.communicate(timeout=120)
    assert first.returncode != 0 and "KeyboardInterrupt" in err
    [workdir] = (root / "train").glob(".work-*")
    keras.saving.load_model(workdir / "checkpoint.keras", safe_mode=True)

    second = _start_training(root, corpus_path)
    done_before = _epochs_done(root)
    _wait_for_epoch(root, second, done_before + 2)
    second.kill()  # SIGKILL: no chance to clean up
    _, err = second.communicate(timeout=60)
    assert f"resuming after epoch {done_before}" in err
    killed_after = _epochs_done(root)
    assert killed_after < 6, "the kill came too late to test anything"
    # The checkpoint carries the optimizer's state of the last whole epoch.
    checkpoint = keras.saving.load_model(workdir / "checkpoint.keras", safe_mode=True)
    [shards] = (root / "shard").glob("*/train.parquet")
    n_batches = sharding.read_layout(shards).n_batches
    assert int(checkpoint.optimizer.iterations.numpy()) == killed_after * n_batches

    third = _start_training(root, corpus_path)
    out, err = third.communicate(timeout=600)
    assert third.returncode == 0, err[-3000:]
    assert f"resuming after epoch {killed_after}" in err
    history = json.loads(out.strip().splitlines()[-1])
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert not workdir.exists() and half_written(root) == []


def test_a_diverging_run_publishes_no_model(tmp_path, shakespeare):
    from charpipe.training import TrainingError

    root = tmp_path / "artifacts"
    _, encoded = encode_bytes(root, tmp_path, shakespeare[:20_000].encode())
    shards = stages.shard(root, encoded, params("shard"))
    # Config refuses an infinite learning rate; the stage itself takes any.
    diverging = {**params("train"), "learning_rate": float("inf")}
    with pytest.raises(TrainingError, match="in epoch 1"):
        stages.train(root, shards, encoded, diverging)
    assert published(root, "train") == []


# --- parameters and generation ------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("epochs", "many"), ("batch_size", 2.5), ("decode_errors", "ignore"),
    ("temperatures", "hot"),
])
def test_deployment_parameters_of_the_wrong_type_are_refused(name, value):
    from prefect.exceptions import ParameterTypeError

    from flows.train import train

    with pytest.raises(ParameterTypeError, match=name):
        train.validate_parameters({name: value})


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from charpipe import model as char_model

    folder = tmp_path_factory.mktemp("model")
    vocab = list("abcde ")
    net = char_model.build(len(vocab), units=8, n_layers=1, dropout=0.0,
                           recurrent_dropout=0.0, batch_size=None, stateful=False)
    net.save(folder / stages.MODEL_FILE)
    (folder / stages.VOCAB_FILE).write_text(json.dumps(vocab))
    return folder


def test_prompts_empty_unknown_dropped_and_long(model_folder):
    from charpipe import model as char_model
    from charpipe import sampling

    net, vocab = char_model.load_folder(model_folder)
    with pytest.raises(sampling.PromptError, match="empty"):
        sampling.usable_prompt("", vocab)
    with pytest.raises(sampling.PromptError, match=r"\['z', '€'\].*--drop-unknown"):
        sampling.usable_prompt("abz€", vocab)
    assert sampling.usable_prompt("AbZ€", vocab, drop_unknown=True) == "ab"
    with pytest.raises(sampling.PromptError, match="once characters outside"):
        sampling.usable_prompt("xyz", vocab, drop_unknown=True)

    long_prompt = "abcde " * 1000
    [text] = sampling.complete(net, vocab, long_prompt, 50, 1.0, seed=0)
    assert len(text) == 50 and set(text) <= set(vocab)
    assert sampling.complete(net, vocab, "ab", 0, 1.0) == [""]
    greedy = [sampling.complete(net, vocab, "ab", 30, config.GREEDY, seed=s)[0]
              for s in (1, 2)]
    assert greedy[0] == greedy[1]


def test_a_model_folder_that_does_not_hold_together_is_refused(model_folder, tmp_path):
    from charpipe import model as char_model

    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    (mismatched / stages.MODEL_FILE).write_bytes(
        (model_folder / stages.MODEL_FILE).read_bytes())
    (mismatched / stages.VOCAB_FILE).write_text(json.dumps(list("abc")))
    with pytest.raises(char_model.ModelError, match="do not belong together"):
        char_model.load_folder(mismatched)

    with store.building(tmp_path, "convert", "k", {}, {}) as out:
        for name in (stages.MODEL_FILE, stages.VOCAB_FILE):
            (out / name).write_bytes((model_folder / name).read_bytes())
    sealed = store.stage_dir(tmp_path, "convert", "k")
    (sealed / stages.VOCAB_FILE).write_text(json.dumps(list("edcba ")))
    with pytest.raises(char_model.ModelError, match="damaged .*not loaded"):
        char_model.load_folder(sealed)

    with pytest.raises(char_model.ModelError, match="not a model folder"):
        char_model.load_folder(tmp_path)


def test_loading_never_runs_code_from_the_file(tmp_path):
    import keras

    from charpipe import model as char_model

    marker = tmp_path / "ran"
    inputs = keras.Input((None,), dtype="int32")
    # Keras stores a Lambda's bytecode; only unsafe loading would run it.
    touch = eval(f"lambda x: x + len(str(__import__('pathlib').Path({str(marker)!r})"
                 ".touch()))")
    outputs = keras.layers.Lambda(touch)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "evil.keras")
    marker.unlink()  # touched once while building; loading must not touch it
    with pytest.raises(char_model.ModelError, match="safely"):
        char_model.load(tmp_path / "evil.keras")
    assert not marker.exists()
