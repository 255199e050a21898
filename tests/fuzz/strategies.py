"""Hostile input for the fuzz tests: JSON that is deep, huge, of the wrong types or full of NUL and
lone surrogates, and the one budget every fuzz test runs under.

The budget is fixed so that a CI run is reproducible and bounded: ``derandomize=True`` (the same
examples on every run), no example database (nothing written into the repository), no deadline
(a loaded CI machine must not turn slowness into a failure). Raise the examples for a longer run
with ``OMNIDESK_FUZZ_EXAMPLES`` (a factor, e.g. ``20``); CI leaves it at 1.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SCALE = max(1, int(os.environ.get("OMNIDESK_FUZZ_EXAMPLES", "1")))


def budget(examples: int) -> settings:
    """The settings of one fuzz test: ``examples`` examples (times ``SCALE``), reproducible."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=True,
        database=None,
        # The running server is one fixture for all examples on purpose; shrinking a server-side
        # failure replays requests, which is slow but must not be cut short.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
        print_blob=True,
    )


# Characters a customer (or an attacker) can put in a JSON string: NUL and other controls, lone
# surrogates (JSON's \ud800 escapes), the BOM, right-to-left marks, astral planes.
SPECIALS = ["\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "\r", "\n", "\x7f", "\x9f", "😀"]
HOSTILE_CHARS = st.one_of(
    st.characters(codec=None, categories=None),  # anything, surrogates included
    st.sampled_from(SPECIALS),
)
# Half the strings are made of the special characters alone, so that every field gets a NUL or a
# lone surrogate early in a short run.
hostile_text = st.one_of(st.text(HOSTILE_CHARS, max_size=60),
                         st.text(st.sampled_from(SPECIALS), min_size=1, max_size=4))

BIG_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**40)])
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), BIG_INTS, st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)
# Depths around and far past Python's recursion limit (1000): a recursive parser must not crash.
DEPTHS = st.one_of(st.integers(min_value=1, max_value=40), st.sampled_from([999, 1_001, 5_000, 100_000]))


def nested(depth: int, leaf: str = "0", kind: str = "list") -> str:
    """``depth`` levels of JSON arrays (or objects ``{"a": ...}``) around ``leaf``, as text."""
    if kind == "list":
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


@st.composite
def api_payloads(draw: st.DrawFn) -> bytes:
    """A body for the API channel: mostly message-shaped with hostile values, sometimes any JSON,
    deep nesting, numbers past int() and float range, or not JSON at all."""
    shape = draw(st.sampled_from(["message", "message", "message", "any", "deep", "deep_field", "huge", "bytes"]))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "huge":  # past the 4300 digits int() takes from a string, and a float past the double range
        digits = "9" * draw(st.sampled_from([20, 4_301, 50_000]))
        return f'{{"message_id": "m", "from": {{"id": {digits}}}, "text": {digits}e999}}'.encode()
    if shape == "deep":
        return nested(draw(DEPTHS), kind=draw(st.sampled_from(["list", "dict"]))).encode()
    if shape == "any":
        return dump(draw(json_values), ascii_only=draw(st.booleans()))
    field = st.one_of(hostile_text, hostile_text, json_values)
    message: dict[str, Any] = {
        "message_id": draw(st.one_of(st.uuids().map(str), field)),
        "from": draw(st.one_of(
            st.fixed_dictionaries({"id": field}, optional={"name": field, "email": field, "phone": field}),
            json_values,
        )),
        "text": draw(field),
    }
    for name in ("thread", "subject", "language"):
        if draw(st.booleans()):
            message[name] = draw(field)
    if shape == "deep_field":  # a well-formed message with one more field nested deep
        message["extra"] = "@deep@"
        return dump(message).replace(b'"@deep@"', nested(draw(DEPTHS)).encode())
    return dump(message, ascii_only=draw(st.booleans()))


def dump(value: Any, ascii_only: bool = True) -> bytes:
    """JSON bytes of ``value``; lone surrogates go through as escapes (ASCII) or as the bytes
    ``surrogatepass`` makes of them (invalid UTF-8), NaN and Infinity as Python writes them."""
    if ascii_only:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
