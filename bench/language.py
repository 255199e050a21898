"""Language detection on short customer messages: accuracy overall, per language, and the
Catalan/Spanish and Portuguese/Spanish confusions, with the time per message.

    .venv/bin/python -m bench.language

Reads bench/language_messages.tsv (language<TAB>text, each under 80 characters, written for
the test set). Measures omnidesk's rule (router.language.detect: lingua restricted to the shop's
languages, the previous language kept when unsure; here there is none, so an unsure answer
counts as wrong), and in the same run a baseline: lingua's low-accuracy mode (trigrams only)
over the same languages, always answering. The last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

from router.language import DEFAULT_LANGUAGES, detect, detector

DATA = Path(__file__).with_name("language_messages.tsv")


def load(path: Path = DATA) -> list[tuple[str, str]]:
    """(language, text) pairs of the test set."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            language, text = line.split("\t", 1)
            pairs.append((language, text))
    return pairs


def score(pairs: list[tuple[str, str]], guess: Callable[[str], str | None]) -> dict[str, object]:
    """Accuracy overall and per language, confusions, and microseconds per message."""
    right: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    confusions: Counter[str] = Counter()
    started = time.perf_counter()
    answers = [guess(text) for _, text in pairs]
    elapsed = time.perf_counter() - started
    for (language, _), answer in zip(pairs, answers, strict=True):
        seen[language] += 1
        if answer == language:
            right[language] += 1
        else:
            confusions[f"{language}->{answer}"] += 1
    return {
        "accuracy": round(sum(right.values()) / len(pairs), 4),
        "per_language": {lang: round(right[lang] / seen[lang], 4) for lang in sorted(seen)},
        "ca_es_confusions": confusions["ca->es"] + confusions["es->ca"],
        "pt_es_confusions": confusions["pt->es"] + confusions["es->pt"],
        "unsure": sum(n for key, n in confusions.items() if key.endswith("->None")),
        "errors": dict(confusions.most_common()),
        "us_per_message": round(elapsed / len(pairs) * 1e6, 1),
    }


def main() -> None:
    pairs = load()
    started = time.perf_counter()
    detector(DEFAULT_LANGUAGES).compute_language_confidence_values("warm up")  # loads the models
    load_s = time.perf_counter() - started
    ours = score(pairs, lambda text: detect([text], None, DEFAULT_LANGUAGES))
    low = (LanguageDetectorBuilder.from_languages(*_languages()).with_low_accuracy_mode()
           .with_preloaded_language_models().build())

    def baseline(text: str) -> str | None:
        found = low.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found else None

    base = score(pairs, baseline)
    print(f"{len(pairs)} messages, languages {', '.join(DEFAULT_LANGUAGES)}; models loaded in {load_s:.2f} s")
    for name, result in (("omnidesk (lingua, restricted, unsure keeps previous)", ours),
                         ("baseline (lingua low-accuracy mode, same languages)", base)):
        print(f"\n{name}: accuracy {result['accuracy']:.1%}, {result['us_per_message']} us/message")
        print("  per language: " + ", ".join(f"{k} {v:.0%}" for k, v in result["per_language"].items()))  # type: ignore[union-attr]
        print(f"  ca/es confusions {result['ca_es_confusions']}, pt/es {result['pt_es_confusions']}, "
              f"unsure {result['unsure']}; errors {result['errors']}")
    summary = {
        "bench": "language", "messages": len(pairs), "detection_accuracy": ours["accuracy"],
        "per_language": ours["per_language"], "ca_es_confusions": ours["ca_es_confusions"],
        "pt_es_confusions": ours["pt_es_confusions"], "unsure": ours["unsure"],
        "us_per_message": ours["us_per_message"], "model_load_s": round(load_s, 2),
        "baseline_accuracy": base["accuracy"], "baseline_us_per_message": base["us_per_message"],
        "baseline_ca_es_confusions": base["ca_es_confusions"], "baseline_pt_es_confusions": base["pt_es_confusions"],
    }
    sys.stdout.write(json.dumps(summary) + "\n")


def _languages() -> list[Language]:
    return [Language.from_iso_code_639_1(IsoCode639_1.from_str(code)) for code in DEFAULT_LANGUAGES]


if __name__ == "__main__":
    main()
