import numpy as np
import pytest

from charpipe import model as char_model
from charpipe import sampling

VOCAB = list("abcdefgh ")


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(7)
    return char_model.build(len(VOCAB), units=16, n_layers=2, dropout=0.2,
                            recurrent_dropout=0.2)


def test_carried_state_gives_the_distribution_of_rereading_the_prefix(model, rng):
    prompt = sampling.encode_prompt("abc ", VOCAB)
    sampler = sampling.Sampler(model, n_samples=1)
    text = list(prompt)
    probs = sampler.next_probs(prompt[None, :])
    for _ in range(25):
        reread = model.predict(np.array([text], dtype="int32"), verbose=0)[0, -1]
        assert np.allclose(probs[0], reread, atol=1e-5)
        nxt = int(rng.integers(len(VOCAB)))
        text.append(nxt)
        probs = sampler.next_probs(np.array([[nxt]]))


@pytest.mark.parametrize("units, n_samples", [(16, 3), (128, 2)])
def test_numpy_step_equals_the_keras_model_at_every_position(units, n_samples, rng):
    import keras

    keras.utils.set_random_seed(3)
    net = char_model.build(len(VOCAB), units=units, n_layers=2, dropout=0.2,
                           recurrent_dropout=0.2)
    # Trained weights are not near zero: spread them so every gate matters.
    net.set_weights([w if i == 0 else w + rng.normal(0, 0.3, w.shape).astype("float32")
                     for i, w in enumerate(net.get_weights())])
    ids = rng.integers(0, len(VOCAB), (n_samples, 60)).astype("int32")
    expected = net.predict(ids, verbose=0)
    sampler = sampling.Sampler(net, n_samples)
    for t in range(ids.shape[1]):
        got = sampler.next_probs(ids[:, t : t + 1])
        assert np.max(np.abs(got - expected[:, t])) <= 1e-5, t


def test_samples_together_match_samples_alone(model):
    prompt = sampling.encode_prompt("ab", VOCAB)
    alone = sampling.Sampler(model, 1).generate(prompt, 30, sampling.GREEDY)
    together = sampling.Sampler(model, 4).generate(prompt, 30, sampling.GREEDY)
    assert all(np.array_equal(row, alone[0]) for row in together)


def test_greedy_takes_the_most_likely_character(rng):
    probs = rng.dirichlet(np.ones(9), size=5)
    assert np.array_equal(sampling.pick(probs, 0.0, rng), probs.argmax(axis=1))


def test_temperature_draws_follow_the_rescaled_distribution():
    probs = np.array([[0.5, 0.3, 0.2]])
    rng = np.random.default_rng(0)
    draws = np.array([sampling.pick(probs, 1.0, rng)[0] for _ in range(20000)])
    assert np.allclose(np.bincount(draws, minlength=3) / len(draws), probs[0], atol=0.015)
    cold = np.array([sampling.pick(probs, 0.1, rng)[0] for _ in range(2000)])
    assert (cold == 0).mean() > 0.98


def test_same_seed_same_text(model):
    first = sampling.complete(model, VOCAB, "ab", 40, 1.0, seed=5)
    assert first == sampling.complete(model, VOCAB, "ab", 40, 1.0, seed=5)
    assert len(first[0]) == 40 and set(first[0]) <= set(VOCAB)
    assert sampling.complete(model, VOCAB, "ab", 0, 1.0) == [""]


def test_prompt_errors_name_the_characters():
    # VOCAB has no upper case: the prompt is read lower-cased, as it was trained.
    with pytest.raises(sampling.PromptError, match=r"\['x', 'z'\]"):
        sampling.encode_prompt("abzX", VOCAB)
    assert list(sampling.encode_prompt("AB", VOCAB)) == list(
        sampling.encode_prompt("ab", VOCAB))
    with pytest.raises(sampling.PromptError, match=r"\['B'\]"):
        sampling.encode_prompt("aB", [*VOCAB, "A"])  # a cased vocabulary: kept
    with pytest.raises(sampling.PromptError, match="empty"):
        sampling.encode_prompt("", VOCAB)
