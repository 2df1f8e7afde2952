"""Comparing with the champion: options, and a champion that cannot read the text."""

import math

import pytest

from charpipe import promotion, store
from charpipe.config import ConfigError


@pytest.mark.parametrize("warm_epochs", [0, -2, 1.5, True])
def test_bad_warm_epochs_are_refused(warm_epochs):
    with pytest.raises(ConfigError, match="warm_epochs"):
        promotion.check_options(0.0, warm_epochs)


def test_good_options_pass():
    promotion.check_options(0.05, None)
    promotion.check_options(0.0, 3)


def test_a_champion_missing_characters_of_the_text_cannot_be_scored(tmp_path):
    # Refused on the vocabulary alone, before any model is loaded.
    store.write_json(tmp_path / "vocab.json", [" ", "e", "t", "h"])
    loss, why = promotion.heldout_loss(tmp_path, "the thee? ZZ")
    assert math.isinf(loss)
    assert "'?'" in why and "'Z'" in why


def test_a_champion_whose_folder_is_gone_gives_way(tmp_path):
    champion = {"test_text_sha256": "other", "model": str(tmp_path / "gone"),
                "test_loss": 1.0}
    loss, why = promotion.score_champion(champion, encoded=None,
                                         test_text_sha256="this")
    assert math.isinf(loss) and "missing" in why
