"""An agent's own settings through the real server on both databases: name and locale (and an
admin setting them), the password change (wrong current 403, too short 422, other sessions signed
out, the caller's kept, CSRF on cookie writes), and the heartbeat with the sweep setting a silent
inbox away while an API-only agent stays online."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Running, running_omnidesk, wait_for
from tests.web.test_events import Subscriber, _has
from tests.web.test_session import PASSWORD, browser, sign_in


def test_name_and_locale(omnidesk: Running) -> None:
    ana = omnidesk.agent("Ana", online=False)
    assert omnidesk.ok("GET", "/me", token=ana["token"])["locale"] == "en"
    changed = omnidesk.ok("PATCH", "/me", token=ana["token"], json={"locale": "ca", "name": "Ana Puig"})
    assert (changed["locale"], changed["name"], changed["id"]) == ("ca", "Ana Puig", ana["id"])
    assert omnidesk.ok("GET", f"/agents/{ana['id']}")["locale"] == "ca"
    bad = omnidesk.api("PATCH", "/me", token=ana["token"], json={"locale": "fr"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("locale:")
    assert omnidesk.api("PATCH", "/me", token=ana["token"], json={"role": "admin"}).status_code == 422
    assert omnidesk.api("PATCH", "/me", token=ana["token"], json={"locale": None}).status_code == 422
    assert omnidesk.ok("GET", "/me", token=ana["token"])["role"] == "agent"

    assert omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"locale": "pl"})["locale"] == "pl"
    assert omnidesk.api("PATCH", f"/agents/{ana['id']}", json={"locale": "xx"}).status_code == 422
    joan = omnidesk.agent("Joan", online=False)
    assert omnidesk.api("PATCH", f"/agents/{ana['id']}", token=joan["token"],
                        json={"locale": "es"}).status_code == 403


def test_password_change(omnidesk: Running) -> None:
    ana = omnidesk.agent("Ana", online=False, password=PASSWORD)
    with browser(omnidesk) as here, browser(omnidesk) as there:
        csrf = sign_in(here, ana["email"]).json()["csrf_token"]
        assert sign_in(there, ana["email"]).status_code == 200
        new = "a brand new passphrase"

        assert here.put("/me/password", json={"current": PASSWORD, "new": new}).status_code == 403  # no CSRF
        assert here.patch("/me", json={"locale": "es"}).status_code == 403
        wrong = here.put("/me/password", json={"current": "not it at all", "new": new},
                         headers={"X-CSRF-Token": csrf})
        assert wrong.status_code == 403 and wrong.json() == {"detail": "the current password is wrong"}
        short = here.put("/me/password", json={"current": PASSWORD, "new": "short"}, headers={"X-CSRF-Token": csrf})
        assert short.status_code == 422 and short.json()["detail"].startswith("new:")
        assert there.get("/me").status_code == 200  # nothing changed yet

        done = here.put("/me/password", json={"current": PASSWORD, "new": new}, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 204, done.text
        assert here.get("/me").status_code == 200  # the caller's session stays
        assert there.get("/me").status_code == 401  # the other one ended
    with browser(omnidesk) as again:
        assert sign_in(again, ana["email"]).status_code == 401
        assert sign_in(again, ana["email"], new).status_code == 200
    # With a bearer token every session ends (the token is no session).
    assert omnidesk.api("PUT", "/me/password", token=ana["token"],
                        json={"current": new, "new": PASSWORD}).status_code == 204


@pytest.fixture
def quick(backend: str, database_url: str, tmp_path: Path) -> Iterator[Running]:
    """omnidesk whose sweep sets an inbox away after 2 s without a heartbeat."""
    with running_omnidesk(backend, database_url, tmp_path, OMNIDESK_PRESENCE_TIMEOUT="2") as running:
        yield running


def test_heartbeat_and_the_presence_sweep(quick: Running) -> None:
    ana = quick.agent("Ana", online=False)
    bot = quick.agent("Bot")  # online by PUT presence, never a heartbeat
    watcher = Subscriber(quick)
    r = quick.api("POST", "/me/heartbeat", token=ana["token"], json={"status": "online"})
    assert r.status_code == 204
    me = quick.ok("GET", "/me", token=ana["token"])
    assert me["presence"] == "online" and me["last_seen_at"] is not None
    assert quick.api("POST", "/me/heartbeat", token=ana["token"]).status_code == 204  # no body
    assert quick.api("POST", "/me/heartbeat", token=ana["token"], json={"status": "offline"}).status_code == 422

    watcher.events_until(_has("agent.presence", agent_id=ana["id"], presence="away"), timeout=15)
    assert quick.ok("GET", "/me", token=ana["token"])["presence"] == "away"
    assert quick.ok("GET", f"/agents/{bot['id']}")["presence"] == "online"
    # Beating with a status brings the agent back.
    quick.api("POST", "/me/heartbeat", token=ana["token"], json={"status": "online"})
    wait_for(lambda: quick.ok("GET", "/me", token=ana["token"])["presence"] == "online", what="online again")
    watcher.close()
