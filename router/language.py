"""The customer's language, detected from what they wrote: the one rule.

Detection uses lingua (lingua-language-detector), which is accurate on short texts, restricted to
the languages the shop serves (``OMNIDESK_LANGUAGES``, default en, es, ca, pt, pl, de, fr, it):
fewer candidates, fewer confusions. One detector is built per process and language set, its models loaded at once (a second or
two; lazily loaded, the first few hundred messages would pay it ten times over).

A short or ambiguous text ("ok", "gracias!", an order number) says little: when the detector is
not confident enough (:data:`MIN_CONFIDENCE`, :data:`MIN_MARGIN`) or the text has too few letters
(:data:`MIN_LETTERS`), the previous language stays. A language an agent or a rule set is never
overridden (:func:`language_update`). Measured on bench/language_messages.tsv by bench/language.py.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

DEFAULT_LANGUAGES = ("en", "es", "ca", "pt", "pl", "de", "fr", "it")
# The detector's relative confidence (0..1, summing to 1 over the shop's languages) the best
# language needs, and its lead over the runner-up, before it replaces what we knew; below either
# the previous language stays (a tie between Portuguese and Spanish says nothing).
MIN_CONFIDENCE = 0.25
MIN_MARGIN = 0.05
# Letters a text needs before it says anything about its language.
MIN_LETTERS = 4
# How much of the customer's latest writing is read (characters, newest kept).
WINDOW = 600
# Where a conversation's language came from (``conversations.language_source``). Detection replaces
# only itself and the channel's hint (a Telegram user's app language); never a person or a rule.
DETECTED = "detected"
REPLACEABLE = (DETECTED, "channel")

_NOISE = re.compile(r"https?://\S+|\S+@\S+|#?\b[\w-]*\d[\w-]*\b")  # links, addresses, order numbers


_building = threading.Lock()


def detector(languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> LanguageDetector:
    """The detector for ``languages`` (ISO 639-1 codes), built once per process and set (a
    second caller while it is being built waits for it rather than building another).
    ValueError for an unknown code."""
    with _building:
        return load_detector(languages)


@functools.cache
def load_detector(languages: tuple[str, ...]) -> LanguageDetector:
    """The detector for ``languages``, its models loaded (cached: once per process and set); call
    :func:`detector`, which builds it once even when two threads ask at the same time."""
    try:
        chosen = [Language.from_iso_code_639_1(IsoCode639_1.from_str(code)) for code in languages]
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"unknown language code among {languages!r}: {exc}") from exc
    if len(chosen) < 2:
        raise ValueError("language detection needs at least two languages to choose from")
    return LanguageDetectorBuilder.from_languages(*chosen).with_preloaded_language_models().build()


def clean(texts: Sequence[str]) -> str:
    """The customer's words from ``texts`` (oldest first): the newest :data:`WINDOW` characters,
    without links, addresses and numbers, which belong to no language."""
    joined = "\n".join(t for t in texts if t)
    return _NOISE.sub(" ", joined[-WINDOW:]).strip()


def detect(texts: Sequence[str], previous: str | None = None,
           languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> str | None:
    """The language the customer writes in, from their ``texts`` (oldest first), as an ISO 639-1
    code; ``previous`` when the texts are too short or the detector is not confident enough."""
    words = clean(texts)
    if sum(ch.isalpha() for ch in words) < MIN_LETTERS:
        return previous
    values = detector(languages).compute_language_confidence_values(words)
    if not values or values[0].value < MIN_CONFIDENCE:
        return previous
    if len(values) > 1 and values[0].value - values[1].value < MIN_MARGIN:
        return previous
    return values[0].language.iso_code_639_1.name.lower()


def language_update(current: str | None, source: str | None, texts: Sequence[str],
                    languages: tuple[str, ...] = DEFAULT_LANGUAGES) -> str | None:
    """The language to set on a conversation (with source :data:`DETECTED`), or None to leave it:
    only a language that is unset, detected or the channel's hint may change, and only to a new one."""
    if current and source not in REPLACEABLE:
        return None  # set by an agent or a rule
    found = detect(texts, current, languages)
    return found if found and found != current else None
