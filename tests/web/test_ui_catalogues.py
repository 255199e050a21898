"""The inbox page's catalogues (web/ui/i18n/<locale>.json): every language has exactly English's
keys, each text the same {placeholders}, no empty text; and every key the page's scripts name
exists (a missing one would show the key itself to the agent)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "web" / "ui"
LOCALES = ["en", "es", "ca", "pt", "pl"]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalogue(code: str) -> dict[str, str]:
    return json.loads((UI / "i18n" / f"{code}.json").read_text(encoding="utf-8"))


def test_the_five_catalogues_exist() -> None:
    assert sorted(p.stem for p in (UI / "i18n").glob("*.json")) == sorted(LOCALES)
    assert f"export const LOCALES = {json.dumps(LOCALES)};" in (UI / "lib" / "i18n.js").read_text()


@pytest.mark.parametrize("code", LOCALES[1:])
def test_same_keys_and_placeholders_as_english(code: str) -> None:
    english, other = catalogue("en"), catalogue(code)
    assert sorted(other) == sorted(english), (
        f"missing: {sorted(set(english) - set(other))}, extra: {sorted(set(other) - set(english))}")
    for key, text in english.items():
        assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(text)), (code, key, other[key])
        assert other[key].strip(), (code, key)


def test_every_key_the_scripts_name_exists() -> None:
    english = catalogue("en")
    named: set[str] = set()
    for script in [*UI.glob("*.js"), *UI.glob("*/*.js"), UI / "index.html"]:
        text = script.read_text(encoding="utf-8")
        named |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.]+)["']""", text))
        named |= set(re.findall(r'data-i18n="([a-z_]+\.[a-z_.]+)"', text))
    assert named, "no keys found: the pattern no longer matches the scripts"
    assert sorted(named - set(english)) == []
