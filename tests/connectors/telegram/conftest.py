from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.telegram import FakeTelegram


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    """The stand-in Bot API on loopback (tests/fakes/telegram.py)."""
    server = FakeTelegram()
    yield server
    server.close()
