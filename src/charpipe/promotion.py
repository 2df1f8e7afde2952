"""Comparing a newly trained model with the champion, on the same test text.

Evaluate's `test_loss` is measured on the test part of the run's own corpus.
A champion evaluated on the same test text is compared by its recorded loss;
one evaluated on another text (a new corpus, another `max_chars` or split) is
scored again here, on the candidate's test text, read through the champion's
own vocabulary. Kept apart from `stages` so that this code is no part of the
six stages' cache keys.
"""

import math
from pathlib import Path

from charpipe import encoding, registry, stages, store
from charpipe.config import ConfigError
from charpipe.store import Ref

MODEL_FIELDS = ("units", "n_layers", "dropout", "recurrent_dropout")


def check_options(tolerance: float, warm_epochs: int | None) -> None:
    """Refuse bad retrain options before any work starts."""
    registry.check_tolerance(tolerance)
    if warm_epochs is not None and (isinstance(warm_epochs, bool)
                                    or not isinstance(warm_epochs, int)
                                    or warm_epochs < 1):
        raise ConfigError(
            f"warm_epochs: must be a positive integer, got {warm_epochs!r}")


def test_text(encoded: Ref) -> str:
    return encoding.decode(encoding.read_ids(encoded.folder, "test"),
                           encoding.read_vocab(encoded.folder))


def candidate(corpus: Ref, encoded: Ref, trained: Ref, converted: Ref,
              evaluated: Ref) -> dict:
    """The registry entry for a model the pipeline has just produced."""
    metrics = store.read_json(evaluated.folder / "metrics.json")
    params = store.read_manifest(trained.folder)["params"]
    return {
        "model": converted.path, "train": trained.path, "evaluate": evaluated.path,
        "test_loss": metrics["test_loss"], "val_loss": metrics["val_loss"],
        "corpus_sha256": corpus.digest,
        "test_text_sha256": registry.text_digest(test_text(encoded)),
        "hyperparameters": {name: params[name] for name in MODEL_FIELDS},
        "epochs": params["epochs"], "warm_start": params.get("warm_start"),
    }


def score_champion(champion: dict, encoded: Ref, test_text_sha256: str):
    """The champion's test loss on this run's test text, and how it was found."""
    if champion["test_text_sha256"] == test_text_sha256:
        return champion["test_loss"], "recorded (same test text)"
    folder = Path(champion["model"])
    if (problem := store.verify(folder)) is not None:
        return math.inf, f"its folder {folder} is {problem}"
    return heldout_loss(folder, test_text(encoded))


def heldout_loss(model_folder: Path, text: str):
    """Loss of a stored model on `text`, read through the model's own vocabulary."""
    from charpipe import model as char_model
    from charpipe import sharding

    vocab = store.read_json(model_folder / "vocab.json")
    missing = sorted(set(text) - set(vocab))
    if missing:
        return math.inf, f"its vocabulary lacks {missing[:10]} of the test text"
    points = encoding.code_points(text)
    ids = encoding.encode(points, encoding.code_points("".join(vocab)))
    rows = sharding.streams(ids, stages.HELDOUT_STREAMS)
    loss, _ = char_model.heldout_loss(char_model.load(model_folder / stages.MODEL_FILE),
                                      rows)
    return loss, "re-evaluated on this run's test text"


def warm_start_model(root: Path, encoded: Ref, train_params: dict):
    """The champion's model folder if its weights fit this run, else None; and why."""
    current = registry.champion(root)
    if current is None:
        return None, "there is no champion yet"
    folder = Path(current["model"])
    if (problem := store.verify(folder)) is not None:
        return None, f"the champion's folder {folder} is {problem}"
    if store.read_json(folder / "vocab.json") != encoding.read_vocab(encoded.folder):
        return None, "the champion was trained on another vocabulary"
    wanted = {name: train_params[name] for name in MODEL_FIELDS}
    if current["hyperparameters"] != wanted:
        return None, (f"the champion's layers {current['hyperparameters']} differ "
                      f"from this run's {wanted}")
    return str(folder), f"starting from the champion's weights in {folder}"
