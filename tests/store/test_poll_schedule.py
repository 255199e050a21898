"""A pull channel's next poll (store.channels): a poll asked for while one ran makes it look again;
another poller's schedule set meanwhile (a rate limit's reset) does not, so two overlapping polls
of a rate-limited channel never poll again and again until the reset (a CI run saw 41 polls in
1.5 s)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from store import channels as channel_store
from store.models import utcnow
from store.sql import channels


def _next_poll(engine: Engine, channel_id: int):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(channels.c.next_poll_at).where(channels.c.id == channel_id)).scalar_one()


def test_a_poll_asked_for_looks_again_another_pollers_reset_does_not(store_engine: Engine) -> None:
    engine = store_engine
    channel_id = channel_store.create_channel(engine, "api", "shop", {
        "secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"})
    first = utcnow()
    second = first + timedelta(milliseconds=5)  # began while the first ran
    # The first poll hit a rate limit: no poll before the reset, 4 s on.
    assert channel_store.mark_error(engine, channel_id, "rate limit", backoff=4, started=first) is False
    reset = _next_poll(engine, channel_id)
    # The second, begun before that, fails the same way: it leaves the reset and does not poll again.
    assert channel_store.mark_error(engine, channel_id, "rate limit", backoff=60, started=second) is False
    assert _next_poll(engine, channel_id) == reset
    # A poll asked for (new data announced) while a poll runs: that poll looks again when done.
    running = utcnow()
    channel_store.poll_now(engine, channel_id)
    assert channel_store.mark_ok(engine, channel_id, 30, started=running) is True
