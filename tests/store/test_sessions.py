"""The sign-in store on both databases: when the rate limit lets an email or address try again,
sessions ending by age and by idleness, and an invite link used twice at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from store import agents, invites, sessions
from store.models import utcnow

PASSWORD = "correct horse battery"


def test_retry_after_counts_from_the_refusal_that_leaves_the_window_last(
    store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store.settings import get_settings

    monkeypatch.setenv("OMNIDESK_SIGN_IN_MAX_FAILURES", "3")
    monkeypatch.setenv("OMNIDESK_SIGN_IN_MAX_FAILURES_PER_IP", "4")
    monkeypatch.setenv("OMNIDESK_SIGN_IN_WINDOW", "600")
    get_settings.cache_clear()
    now = utcnow()
    rows = [("a@x.test", "10.0.0.1", 700), ("a@x.test", "10.0.0.1", 500), ("a@x.test", "10.0.0.2", 400),
            ("b@x.test", "10.0.0.1", 350), ("a@x.test", "10.0.0.3", 300), ("c@x.test", "10.0.0.1", 100)]
    with store_engine.begin() as conn:
        conn.execute(sessions.failures.insert(), [
            {"email": e, "ip": ip, "created_at": now - timedelta(seconds=ago)} for e, ip, ago in rows])
        # a@: three refusals in the window (500, 400, 300 s ago): free when the one of 500 s leaves it.
        assert sessions.retry_after(conn, "a@x.test", "10.0.0.9", now) == 100
        # 10.0.0.1: three in the window (500, 350, 100 s ago; 700 has left it), the limit is four.
        assert sessions.retry_after(conn, "b@x.test", "10.0.0.1", now) == 0
        assert sessions.retry_after(conn, "b@x.test", "10.0.0.2", now) == 0
        # The refusal of 700 s ago was deleted on the way.
        assert conn.execute(select(func.count()).select_from(sessions.failures)).scalar_one() == 5
    with store_engine.begin() as conn:
        conn.execute(sessions.failures.insert().values(email="d@x.test", ip="10.0.0.1", created_at=now))
        assert sessions.retry_after(conn, "b@x.test", "10.0.0.1", now) == 100  # its 4th latest: 500 s ago
    with pytest.raises(sessions.RateLimited) as limited:
        sessions.sign_in(store_engine, "A@x.test", PASSWORD, "10.0.0.7")
    assert 0 < limited.value.retry_after <= 100


def test_sessions_end_when_too_old_or_idle(store_engine: Engine) -> None:
    agent_id, _ = agents.create_agent(store_engine, name="Ana", email="ana@x.test", password=PASSWORD)
    first = sessions.sign_in(store_engine, "ana@x.test", PASSWORD, "10.0.0.1")
    second = sessions.sign_in(store_engine, "ana@x.test", PASSWORD, "10.0.0.1")
    assert first and second and first.token and second.token and first.token != second.token
    assert sessions.current(store_engine, first.token).agent.id == agent_id  # type: ignore[union-attr]
    assert sessions.sign_in(store_engine, "ana@x.test", "wrong password", "10.0.0.1") is None

    with store_engine.begin() as conn:  # idle for 13 hours (the default allows 12)
        conn.execute(update(sessions.sessions).where(sessions.sessions.c.id == first.id)
                     .values(last_seen_at=utcnow() - timedelta(hours=13)))
        conn.execute(update(sessions.sessions).where(sessions.sessions.c.id == second.id)
                     .values(last_seen_at=utcnow() - timedelta(minutes=5)))
    assert sessions.current(store_engine, first.token) is None
    assert sessions.current(store_engine, second.token) is not None
    with store_engine.connect() as conn:  # used: seen now again
        seen = conn.execute(select(sessions.sessions.c.last_seen_at)
                            .where(sessions.sessions.c.id == second.id)).scalar_one()
    assert utcnow() - seen < timedelta(minutes=1)
    with store_engine.begin() as conn:  # past its end, however busy
        conn.execute(update(sessions.sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert sessions.current(store_engine, second.token) is None
    assert not sessions.sign_out(store_engine, "never-a-session")


def test_an_invite_used_twice_at_once_works_once(store_engine: Engine) -> None:
    agent_id, _ = agents.create_agent(store_engine, name="Ana", email="ana@x.test")
    made = invites.create(store_engine, agent_id)
    assert made is not None
    results: list[object] = []
    start = threading.Barrier(2)

    def use(password: str) -> None:
        start.wait()
        try:
            results.append(invites.accept(store_engine, made.token, password))
        except invites.InviteGone as exc:
            results.append(exc)

    threads = [threading.Thread(target=use, args=(p,)) for p in ("first passphrase", "second passphrase")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if isinstance(r, sessions.Session)]
    assert len(won) == 1 and sum(isinstance(r, invites.InviteGone) for r in results) == 1
    with store_engine.connect() as conn:
        live = conn.execute(select(func.count()).select_from(sessions.sessions)).scalar_one()
    assert live == 1
