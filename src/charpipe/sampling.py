"""Text generation that carries the GRU states from one character to the next.

The book's generator feeds the whole text so far back through the model for
every new character, so each character costs a pass over the prefix. Here a
stateful twin of the model reads the prompt once and then one character per
step; its states hold everything the prefix said. The result is the same
distribution at a cost that does not grow with the text.
"""

import numpy as np
import tensorflow as tf

from charpipe.errors import CharpipeError
from charpipe import model as char_model
from charpipe.config import GREEDY


class PromptError(CharpipeError, ValueError):
    """The prompt cannot be encoded with the model's vocabulary."""


def usable_prompt(prompt: str, vocab: list[str], drop_unknown: bool = False) -> str:
    """The prompt as the model can read it.

    Characters outside the vocabulary are refused, naming them, or with
    `drop_unknown` left out; a prompt with nothing left is refused.
    """
    known = set(vocab)
    unknown = sorted({c for c in prompt if c not in known})
    if unknown and not drop_unknown:
        raise PromptError(
            f"prompt characters {unknown!r} are not in the model's vocabulary of "
            f"{len(vocab)} characters ({''.join(vocab)!r}); remove them, or pass "
            "--drop-unknown to leave them out")
    kept = "".join(c for c in prompt if c in known)
    if not kept:
        raise PromptError("the prompt is empty" + (
            " once characters outside the vocabulary are left out" if prompt else "")
            + "; give at least one character of the vocabulary")
    return kept


def encode_prompt(prompt: str, vocab: list[str]) -> np.ndarray:
    usable_prompt(prompt, vocab)  # refuses an empty prompt or unknown characters
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in prompt], dtype=np.int32)


def pick(probs: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One id per row of `probs`; temperature 0 means the most likely id."""
    if temperature == GREEDY:
        return np.argmax(probs, axis=-1)
    logits = np.log(np.maximum(probs.astype(np.float64), 1e-30)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    # Inverse-CDF draw, one uniform per row: vectorised over the samples.
    u = rng.random((len(weights), 1))
    ids = (np.cumsum(weights, axis=-1) < u).sum(axis=-1)
    return np.minimum(ids, weights.shape[-1] - 1)


class Sampler:
    """A stateful copy of a model for `n_samples` texts generated together."""

    def __init__(self, model, n_samples: int = 1):
        self.stepper = char_model.with_batch_size(model, n_samples, stateful=True)
        self.n_samples = n_samples
        self._call = tf.function(
            lambda ids: self.stepper(ids, training=False),
            input_signature=[tf.TensorSpec((n_samples, None), tf.int32)])

    def next_probs(self, ids: np.ndarray) -> np.ndarray:
        """Read ids of shape (n_samples, t); return the last step's distribution."""
        return self._call(tf.constant(ids, dtype=tf.int32))[:, -1, :].numpy()

    def generate(self, prompt_ids: np.ndarray, length: int, temperature: float,
                 seed: int | None = None) -> np.ndarray:
        """Ids of shape (n_samples, length) following the prompt."""
        rng = np.random.default_rng(seed)
        char_model.reset_states(self.stepper)
        out = np.zeros((self.n_samples, length), dtype=np.int32)
        if length == 0:
            return out
        probs = self.next_probs(np.tile(prompt_ids, (self.n_samples, 1)))
        for i in range(length):
            out[:, i] = pick(probs, temperature, rng)
            if i + 1 < length:
                probs = self.next_probs(out[:, i : i + 1])
        return out


def complete(model, vocab: list[str], prompt: str, length: int, temperature: float,
             seed: int | None = None, n_samples: int = 1) -> list[str]:
    """`n_samples` continuations of `prompt`, each `length` characters long."""
    prompt_ids = encode_prompt(prompt, vocab)
    ids = Sampler(model, n_samples).generate(prompt_ids, length, temperature, seed)
    table = np.array(vocab)
    return ["".join(table[row]) for row in ids]
