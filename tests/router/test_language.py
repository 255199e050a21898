"""The customer's language from their messages (router.language), and its accuracy on the test set."""

from __future__ import annotations

import pytest

from bench.language import load, score
from router.language import DEFAULT_LANGUAGES, DETECTED, detect, detector, language_update


def test_detects_each_language_of_a_clear_message() -> None:
    assert detect(["Hola, on és la meva comanda?"]) == "ca"
    assert detect(["Hola, ¿dónde está mi pedido?"]) == "es"
    assert detect(["Olá, onde está a minha encomenda?"]) == "pt"
    assert detect(["Dzień dobry, gdzie jest moje zamówienie?"]) == "pl"
    assert detect(["Wo ist meine Bestellung?"]) == "de"


def test_short_or_ambiguous_text_keeps_the_previous_language() -> None:
    assert detect(["ok"], "de") == "de"
    assert detect(["ok"]) is None
    assert detect(["#45821 https://shop.example/o/45821 ana@example.com"], "it") == "it"
    # Portuguese and Spanish tie on this one: nothing is learnt from it.
    assert detect(["Quero cancelar a encomenda, por favor"], "pt") == "pt"


def test_later_messages_add_to_the_earlier_ones() -> None:
    assert detect(["ok", "gràcies", "Encara no he rebut el paquet"]) == "ca"


def test_only_the_shops_languages_are_candidates() -> None:
    assert detect(["Hallo, waar is mijn bestelling?"], None, ("en", "de")) in ("en", "de")
    with pytest.raises(ValueError, match="unknown language"):
        detector(("en", "xx"))
    with pytest.raises(ValueError, match="two languages"):
        detector(("en",))


def test_a_language_set_by_hand_or_by_a_rule_is_never_replaced() -> None:
    spanish = ["Hola, ¿dónde está mi pedido?"]
    assert language_update(None, None, spanish) == "es"
    assert language_update("ca", DETECTED, spanish) == "es"
    assert language_update("es", DETECTED, spanish) is None  # nothing new
    assert language_update("ca", "channel", spanish) == "es"  # the channel's hint
    assert language_update("ca", "manual", spanish) is None
    assert language_update("ca", None, spanish) is None  # set before sources were kept
    assert language_update("ca", "rule", spanish) is None
    assert language_update("ca", DETECTED, ["ok"]) is None  # unsure: stays


def test_accuracy_on_the_short_message_set() -> None:
    pairs = load()
    assert len(pairs) >= 300
    assert all(len(text) < 80 for _, text in pairs)
    assert {lang for lang, _ in pairs} == set(DEFAULT_LANGUAGES)
    result = score(pairs, lambda text: detect([text]))
    assert result["accuracy"] >= 0.95, result["errors"]
    assert result["ca_es_confusions"] <= 1 and result["pt_es_confusions"] <= 1, result["errors"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_starting_worker_loads_the_models_in_the_background(backend: str, request: pytest.FixtureRequest) -> None:
    from router import language
    from tests.support import wait_for

    language.load_detector.cache_clear()
    request.getfixturevalue("omnidesk")  # omnidesk with its workers, started
    wait_for(lambda: language.load_detector.cache_info().currsize == 1, timeout=60, what="the models loaded")
    assert detect(["Bon dia, on és la meva comanda?"]) == "ca"
