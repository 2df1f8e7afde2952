"""Text generation that carries the GRU states from one character to the next.

The book's generator feeds the whole text so far back through the model for
every new character, so each character costs a pass over the prefix. Here the
prompt is read once and then one character per step; the states hold
everything the prefix said. The result is the same distribution at a cost
that does not grow with the text.

One step is a few matrix products on a batch of (n_samples, units): far too
little work for TensorFlow's per-call overhead (a few hundred microseconds),
so the step runs in numpy on the model's own weights, with the equations of
`keras.layers.GRU` (reset gate applied after the recurrent product, gates in
the order z, r, h). Dropout is off at inference, as in Keras.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from charpipe.errors import CharpipeError
from charpipe.config import GREEDY


class PromptError(CharpipeError, ValueError):
    """The prompt cannot be encoded with the model's vocabulary."""


def reading(prompt: str, vocab: list[str]) -> str:
    """The prompt lower-cased for a model that knows no upper-case letter
    (trained on lower-cased text), else as it is."""
    return prompt.lower() if all(c == c.lower() for c in vocab) else prompt


def usable_prompt(prompt: str, vocab: list[str], drop_unknown: bool = False) -> str:
    """The prompt as the model can read it (see `reading`).

    Characters outside the vocabulary are refused, naming them, or with
    `drop_unknown` left out; a prompt with nothing left is refused.
    """
    prompt = reading(prompt, vocab)
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
    prompt = usable_prompt(prompt, vocab)  # refuses empty or unknown prompts
    index = {c: i for i, c in enumerate(vocab)}
    return np.array([index[c] for c in prompt], dtype=np.int32)


def pick(probs: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One id per row of `probs`; temperature 0 means the most likely id."""
    logits = np.log(np.maximum(probs.astype(np.float64), 1e-30))
    return pick_from_logits(logits, temperature, rng)


def pick_from_logits(logits: np.ndarray, temperature: float,
                     rng: np.random.Generator) -> np.ndarray:
    """`pick` on unnormalised log-probabilities, skipping a softmax and a log."""
    if temperature == GREEDY:
        return np.argmax(logits, axis=-1)
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    weights = np.cumsum(np.exp(scaled), axis=-1)
    # Inverse-CDF draw, one uniform per row: vectorised over the samples.
    u = rng.random((len(weights), 1)) * weights[:, -1:]
    ids = (weights < u).sum(axis=-1)
    return np.minimum(ids, weights.shape[-1] - 1)


class GruWeights:
    """One GRU layer's arrays, split per gate as `keras.layers.GRU` uses them."""

    def __init__(self, layer):
        config = layer.get_config()
        expected = {"activation": "tanh", "recurrent_activation": "sigmoid",
                    "reset_after": True, "use_bias": True}
        found = {k: config.get(k) for k in expected}
        if found != expected:
            raise CharpipeError(f"GRU layer {layer.name} has {found}; the numpy step "
                                f"implements only {expected}")
        kernel, recurrent, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
        self.units = recurrent.shape[0]
        self.kernel = kernel                     # (inputs, 3 * units)
        self.input_bias = bias[0]                # (3 * units,)
        self.recurrent = recurrent               # (units, 3 * units)
        self.recurrent_bias = bias[1]            # (3 * units,)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


class Sampler:
    """`n_samples` texts generated together, each carrying its own GRU states."""

    def __init__(self, model, n_samples: int = 1):
        from charpipe import model as char_model

        self.n_samples = n_samples
        self.grus = [GruWeights(layer) for layer in char_model.gru_layers(model)]
        # The input is a frozen one-hot embedding: a character's projection
        # through the first GRU's kernel is one row of (table @ kernel).
        table = np.asarray(model.get_layer("one_hot").get_weights()[0], np.float32)
        first = self.grus[0]
        self.first_projection = table @ first.kernel + first.input_bias
        dense_kernel, dense_bias = model.get_layer("next_char").get_weights()
        self.dense_kernel = np.asarray(dense_kernel, np.float32)
        self.dense_bias = np.asarray(dense_bias, np.float32)
        self.reset()

    def reset(self) -> None:
        self.states = [np.zeros((self.n_samples, gru.units), np.float32)
                       for gru in self.grus]

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Read one id per sample; return the logits of the next character."""
        x = self.first_projection[ids]
        for i, gru in enumerate(self.grus):
            if i:
                x = self.states[i - 1] @ gru.kernel + gru.input_bias
            h, u = self.states[i], gru.units
            inner = h @ gru.recurrent
            inner += gru.recurrent_bias
            gates = _sigmoid(x[:, : 2 * u] + inner[:, : 2 * u])
            z, r = gates[:, :u], gates[:, u:]
            candidate = inner[:, 2 * u :]
            candidate *= r
            candidate += x[:, 2 * u :]
            np.tanh(candidate, out=candidate)
            # h' = z * h + (1 - z) * candidate, as Keras writes it
            self.states[i] = z * h + (1.0 - z) * candidate
        return self.states[-1] @ self.dense_kernel + self.dense_bias

    def read(self, ids: np.ndarray) -> np.ndarray:
        """Read ids of shape (n_samples, t); return the last step's logits."""
        ids = np.asarray(ids)
        for t in range(ids.shape[1]):
            logits = self.step(ids[:, t])
        return logits

    def next_probs(self, ids: np.ndarray) -> np.ndarray:
        """Read ids of shape (n_samples, t); return the last step's distribution."""
        logits = self.read(ids).astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=-1, keepdims=True)

    def generate(self, prompt_ids: np.ndarray, length: int, temperature: float,
                 seed: int | None = None) -> np.ndarray:
        """Ids of shape (n_samples, length) following the prompt."""
        rng = np.random.default_rng(seed)
        self.reset()
        out = np.zeros((self.n_samples, length), dtype=np.int32)
        if length == 0:
            return out
        # A step's products are too small for BLAS threads to pay off, and on
        # busy cores their spin-waiting made 64 samples up to ten times slower.
        with threadpool_limits(1, user_api="blas"):
            logits = self.read(np.tile(prompt_ids, (self.n_samples, 1)))
            for i in range(length):
                out[:, i] = pick_from_logits(logits, temperature, rng)
                if i + 1 < length:
                    logits = self.step(out[:, i])
        return out


def complete(model, vocab: list[str], prompt: str, length: int, temperature: float,
             seed: int | None = None, n_samples: int = 1) -> list[str]:
    """`n_samples` continuations of `prompt`, each `length` characters long."""
    prompt_ids = encode_prompt(prompt, vocab)
    ids = Sampler(model, n_samples).generate(prompt_ids, length, temperature, seed)
    table = np.array(vocab)
    return ["".join(table[row]) for row in ids]
