"""The presence rule: online, beating once, silent past the timeout -> away; nothing else moves."""

from __future__ import annotations

from datetime import datetime, timedelta

from router.presence import stale

NOW = datetime(2026, 11, 29, 12, 0, 0)
T = timedelta(seconds=90)


def test_stale_only_when_online_and_silent_past_the_timeout() -> None:
    assert stale("online", NOW - timedelta(seconds=91), NOW, timeout=T)
    assert not stale("online", NOW - timedelta(seconds=90), NOW, timeout=T)  # exactly the timeout: not yet
    assert not stale("online", NOW, NOW, timeout=T)
    assert not stale("online", None, NOW, timeout=T)  # never beat: an API-only integration, left alone
    assert not stale("away", NOW - timedelta(hours=1), NOW, timeout=T)
    assert not stale("offline", NOW - timedelta(hours=1), NOW, timeout=T)
