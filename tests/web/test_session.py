"""Agents signing in to the inbox with email and password, through the real server on both
databases: the session cookie and its attributes, cookie auth with its CSRF proof beside bearer
tokens, signing out, disabled agents, password rules, the rate limit kept in the database, the
one-time invite links and resets, and the demo agents' logins."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from store.models import utcnow
from store.sql import agents
from tests.support import Running

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database
PASSWORD = "correct horse battery"


@contextmanager
def browser(omnidesk: Running) -> Iterator[httpx.Client]:
    """A client of its own, keeping cookies as a browser does (no bearer token)."""
    with httpx.Client(base_url=omnidesk.url + "/api/v1", timeout=30) as client:
        yield client


def agent_with_password(omnidesk: Running, name: str = "Ana", password: str = PASSWORD) -> dict[str, Any]:
    return omnidesk.agent(name, online=False, password=password)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/session", json={"email": email, "password": password})


def cookie_attributes(response: httpx.Response) -> dict[str, str]:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("omnidesk_session=")]
    parts = [p.strip() for p in header.split(";")]
    return {k.lower(): v for k, _, v in (p.partition("=") for p in parts[1:])} | {"value": parts[0].split("=", 1)[1]}


def test_sign_in_cookie_and_csrf(omnidesk: Running) -> None:
    ana = agent_with_password(omnidesk)
    assert "password" not in ana and PASSWORD not in str(ana)
    with omnidesk.engine.connect() as conn:
        stored = conn.execute(select(agents.c.password_hash).where(agents.c.id == ana["id"])).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored

    with browser(omnidesk) as web:
        assert web.get("/me").status_code == 401
        answer = sign_in(web, ana["email"].upper())  # emails are case-insensitive
        assert answer.status_code == 200, answer.text
        session = answer.json()
        assert session["agent"]["id"] == ana["id"] and session["csrf_token"]
        attrs = cookie_attributes(answer)
        assert {"httponly", "path", "samesite"} <= attrs.keys() and "secure" not in attrs
        assert attrs["path"] == "/" and attrs["samesite"].lower() in ("lax", "strict")
        assert int(attrs["max-age"]) > 3600
        cookie = attrs["value"]

        # The cookie is enough for every read an agent makes.
        assert web.get("/me").json()["id"] == ana["id"]
        assert web.get("/conversations").status_code == 200
        assert web.get("/session").json()["csrf_token"] == session["csrf_token"]

        # A write with the cookie needs the session's CSRF token.
        presence = f"/agents/{ana['id']}/presence"
        for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
            refused = web.put(presence, json={"status": "online"}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "X-CSRF-Token" in refused.json()["detail"]
        assert omnidesk.ok("GET", f"/agents/{ana['id']}")["presence"] == "offline"
        done = web.put(presence, json={"status": "online"}, headers={"X-CSRF-Token": session["csrf_token"]})
        assert done.status_code == 200, done.text
        assert omnidesk.ok("GET", f"/agents/{ana['id']}")["presence"] == "online"
        # An agent's cookie is an agent's: admin calls stay refused.
        assert web.get("/channels").status_code == 403

        # Bearer tokens need no CSRF token, cookie or not.
        assert omnidesk.api("PUT", presence, token=ana["token"], json={"status": "away"}).status_code == 200
        assert web.put(presence, json={"status": "away"},
                       headers={"Authorization": f"Bearer {ana['token']}"}).status_code == 200

        # Signing out needs the CSRF token too; then the cookie is cleared and ends for good.
        assert web.delete("/session").status_code == 403
        assert web.get("/me").status_code == 200
        out = web.delete("/session", headers={"X-CSRF-Token": session["csrf_token"]})
        assert out.status_code == 204
        assert 'omnidesk_session=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
        assert web.get("/me").status_code == 401
    with browser(omnidesk) as replay:  # the old cookie, sent again by hand
        replay.cookies.set("omnidesk_session", cookie)
        ended = replay.get("/me")
        assert ended.status_code == 401 and ended.json()["detail"] == "your session has ended; sign in again"
        assert replay.get("/session").status_code == 401


def test_wrong_pairs_and_disabled_agents(omnidesk: Running) -> None:
    ana = agent_with_password(omnidesk)
    with browser(omnidesk) as web:
        wrong = sign_in(web, ana["email"], "not the password")
        unknown = sign_in(web, "nobody@shop.test")
        for answer in (wrong, unknown):
            assert answer.status_code == 401 and answer.json() == {"detail": "wrong email or password"}
            assert "set-cookie" not in answer.headers
        assert sign_in(web, ana["email"]).status_code == 200
        assert web.get("/me").status_code == 200

        # Disabling ends the session at once, and the token, and sign-in says what a wrong pair says.
        omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"active": False})
        assert web.get("/me").status_code == 401
        assert omnidesk.api("GET", "/me", token=ana["token"]).status_code == 401
        assert sign_in(web, ana["email"]).json() == {"detail": "wrong email or password"}

        # Enabled again: the password works; the revoked token stays revoked; a new one works.
        omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"active": True})
        assert sign_in(web, ana["email"]).status_code == 200
        assert omnidesk.api("GET", "/me", token=ana["token"]).status_code == 401
        token = omnidesk.ok("POST", f"/agents/{ana['id']}/token")["token"]
        assert omnidesk.ok("GET", "/me", token=token)["id"] == ana["id"]
        assert omnidesk.api("POST", f"/agents/{ana['id']}/token", token=token).status_code == 403


@SQLITE_ONLY
def test_password_rules_and_reset_by_admin(omnidesk: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    short = omnidesk.api("POST", "/agents", json={"name": "Eve", "email": "eve@shop.test", "password": "short"})
    assert short.status_code == 422 and "password" in short.json()["detail"] and "10" in short.json()["detail"]
    ana = agent_with_password(omnidesk)
    assert omnidesk.api("PATCH", f"/agents/{ana['id']}", json={"password": "x" * 9}).status_code == 422
    assert omnidesk.api("PATCH", f"/agents/{ana['id']}", json={"password": "x" * 1025}).status_code == 422

    with browser(omnidesk) as web:
        assert sign_in(web, ana["email"]).status_code == 200
        new = "a brand new passphrase"
        changed = omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"password": new})
        assert new not in str(changed)
        assert web.get("/me").status_code == 401  # a new password ends the sessions
        assert sign_in(web, ana["email"]).status_code == 401
        assert sign_in(web, ana["email"], new).status_code == 200
        # Only an admin sets passwords, cookie or token.
        csrf = web.get("/session").json()["csrf_token"]
        assert web.patch(f"/agents/{ana['id']}", json={"password": "mine mine mine"},
                         headers={"X-CSRF-Token": csrf}).status_code == 403
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged and new not in logged


def test_rate_limit_per_email_and_address(omnidesk: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, per_email=3, per_ip=5, window=600)
    ana = agent_with_password(omnidesk, "Ana")
    bob = agent_with_password(omnidesk, "Bob")
    with browser(omnidesk) as web:
        for _ in range(3):
            assert sign_in(web, ana["email"], "guess guess").status_code == 401
        limited = sign_in(web, ana["email"])  # even the right password, while limited
        assert limited.status_code == 429, limited.text
        assert 0 < int(limited.headers["Retry-After"]) <= 600
        assert "set-cookie" not in limited.headers

        # Another email from the same address: its own count, until the address's is reached.
        assert sign_in(web, bob["email"], "guess guess").status_code == 401
        assert sign_in(web, "nobody@shop.test", "guess guess").status_code == 401
        assert sign_in(web, bob["email"]).status_code == 429

        # The count is in the database (every web process reads it) and slides with its window.
        with omnidesk.engine.begin() as conn:
            conn.execute(update(failures_table()).values(created_at=utcnow() - timedelta(seconds=601)))
        assert sign_in(web, ana["email"]).status_code == 200
        # A success starts the email's count again.
        for _ in range(2):
            assert sign_in(web, ana["email"], "guess guess").status_code == 401
        assert sign_in(web, ana["email"]).status_code == 200
        assert sign_in(web, ana["email"], "guess guess").status_code == 401


@SQLITE_ONLY
def test_unknown_emails_take_as_long_as_wrong_passwords(omnidesk: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    limits(monkeypatch, per_email=100, per_ip=100, window=600)
    ana = agent_with_password(omnidesk)
    with browser(omnidesk) as web:
        def took(email: str) -> float:
            start = time.perf_counter()
            assert sign_in(web, email, "guess guess").status_code == 401
            return time.perf_counter() - start

        wrong = statistics.median(took(ana["email"]) for _ in range(5))
        unknown = statistics.median(took(f"nobody{n}@shop.test") for n in range(5))
    # Without the dummy hash an unknown email is answered in a few ms, an argon2 check takes far more.
    assert unknown > wrong * 0.5, (unknown, wrong)


@SQLITE_ONLY
def test_demo_agents_sign_in_with_the_password_printed_on_every_start(
    omnidesk: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_startup import show_logins

    def started() -> dict[str, str]:
        show_logins(omnidesk.engine, demo=True)
        return dict(re.findall(r"^demo inbox login (\S+) password: (\S+)$", capsys.readouterr().out, re.M))

    logins = started()
    assert sorted(logins) == ["admin@localhost", "ana@demo.shop", "jan@demo.shop", "rita@demo.shop"]
    with browser(omnidesk) as admin:  # the admin too: the admin calls work with the cookie
        assert sign_in(admin, "admin@localhost", logins["admin@localhost"]).status_code == 200
        assert admin.get("/channels").status_code == 200
    with browser(omnidesk) as web:
        signed = sign_in(web, "ana@demo.shop", logins["ana@demo.shop"])
        assert signed.status_code == 200, signed.text
        ana_id = signed.json()["agent"]["id"]
        assert sign_in(web, "jan@demo.shop", logins["ana@demo.shop"]).status_code == 401  # one each
        assert started() == logins  # the next start: the same logins, and the session kept
        assert web.get("/me").json()["id"] == ana_id
        # Reset (an invite link): the next start sets the demo password again.
        omnidesk.ok("POST", f"/agents/{ana_id}/invite")
        assert sign_in(web, "ana@demo.shop", logins["ana@demo.shop"]).status_code == 401
        assert started() == logins
        assert sign_in(web, "ana@demo.shop", logins["ana@demo.shop"]).status_code == 200


def limits(monkeypatch: pytest.MonkeyPatch, *, per_email: int, per_ip: int, window: int) -> None:
    from store.settings import get_settings

    monkeypatch.setenv("OMNIDESK_SIGN_IN_MAX_FAILURES", str(per_email))
    monkeypatch.setenv("OMNIDESK_SIGN_IN_MAX_FAILURES_PER_IP", str(per_ip))
    monkeypatch.setenv("OMNIDESK_SIGN_IN_WINDOW", str(window))
    get_settings.cache_clear()


def failures_table() -> Any:
    from store.sessions import failures

    return failures
