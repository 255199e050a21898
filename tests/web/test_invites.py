"""Invite links through the real server on both databases: an admin's one-time link with which an
agent sets a password and is signed in; used, expired and replaced links; a reset ending the
sessions and the old password; and, on https, Secure cookies, https links and the origin check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from store.invites import invites
from store.models import utcnow
from tests.support import Running, running_omnidesk
from tests.web.test_session import browser, cookie_attributes, sign_in

NEW = "my own passphrase"


def link_token(url: str) -> str:
    return url.rsplit("/invite/", 1)[1]


def test_invite_sets_a_password_once_and_reset_revokes(omnidesk: Running) -> None:
    ana = omnidesk.agent("Ana", online=False)  # no password: cannot sign in yet
    with browser(omnidesk) as web:
        assert sign_in(web, ana["email"], "anything at all").status_code == 401

        made = omnidesk.ok("POST", f"/agents/{ana['id']}/invite")
        assert made["url"].startswith(omnidesk.url + "/invite/")
        token = link_token(made["url"])
        assert web.get(f"/invites/{token}").json()["email"] == ana["email"]
        short = web.post(f"/invites/{token}", json={"password": "short"})
        assert short.status_code == 422 and "password" in short.json()["detail"]

        accepted = web.post(f"/invites/{token}", json={"password": NEW})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["agent"]["id"] == ana["id"] and "httponly" in cookie_attributes(accepted)
        assert web.get("/me").json()["id"] == ana["id"]  # signed in by the link
        for again in (web.post(f"/invites/{token}", json={"password": "another passphrase"}),
                      web.get(f"/invites/{token}")):
            assert again.status_code == 410, again.text
        assert web.post("/invites/not-a-real-token", json={"password": NEW}).status_code == 404
        assert web.get("/invites/not-a-real-token").status_code == 404

    with browser(omnidesk) as other:
        assert sign_in(other, ana["email"], NEW).status_code == 200
        # A reset: a new link ends the sessions and the password; the API token stays.
        first = link_token(omnidesk.ok("POST", f"/agents/{ana['id']}/invite")["url"])
        assert other.get("/me").status_code == 401
        assert sign_in(other, ana["email"], NEW).status_code == 401
        assert omnidesk.ok("GET", "/me", token=ana["token"])["id"] == ana["id"]
        # A newer link replaces an unused one.
        second = link_token(omnidesk.ok("POST", f"/agents/{ana['id']}/invite")["url"])
        assert other.post(f"/invites/{first}", json={"password": NEW}).status_code == 404
        # An expired link is gone.
        with omnidesk.engine.begin() as conn:
            conn.execute(update(invites).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert other.post(f"/invites/{second}", json={"password": NEW}).status_code == 410
        assert sign_in(other, ana["email"], NEW).status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
def test_who_may_invite(omnidesk: Running) -> None:
    ana = omnidesk.agent("Ana", online=False)
    bob = omnidesk.agent("Bob", online=False)
    refused = omnidesk.api("POST", f"/agents/{bob['id']}/invite", token=ana["token"])
    assert refused.status_code == 403
    assert omnidesk.api("POST", "/agents/999999/invite").status_code == 404
    omnidesk.ok("PATCH", f"/agents/{bob['id']}", json={"active": False})
    assert omnidesk.api("POST", f"/agents/{bob['id']}/invite").status_code == 409
    # Disabling voids a link not used yet.
    token = link_token(omnidesk.ok("POST", f"/agents/{ana['id']}/invite")["url"])
    omnidesk.ok("PATCH", f"/agents/{ana['id']}", json={"active": False})
    with browser(omnidesk) as web:
        assert web.post(f"/invites/{token}", json={"password": NEW}).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"])
def test_on_https_cookies_are_secure_and_other_sites_cannot_sign_in(
    backend: str, database_url: str, tmp_path: object
) -> None:
    with running_omnidesk(backend, database_url, tmp_path, OMNIDESK_PUBLIC_URL="https://desk.shop.test") as desk:
        ana = desk.agent("Ana", online=False)
        url = desk.ok("POST", f"/agents/{ana['id']}/invite")["url"]
        assert url.startswith("https://desk.shop.test/invite/")
        with browser(desk) as web:
            foreign = web.post(f"/invites/{link_token(url)}", json={"password": NEW},
                               headers={"Origin": "https://evil.example"})
            assert foreign.status_code == 403
            accepted = web.post(f"/invites/{link_token(url)}", json={"password": NEW},
                                headers={"Origin": "https://desk.shop.test"})
            assert accepted.status_code == 200, accepted.text
            assert "secure" in cookie_attributes(accepted)
            for origin, status in (("https://evil.example", 403), ("null", 403), ("https://desk.shop.test", 200),
                                   (desk.url, 200)):  # the address the request was sent to is ours too
                answer = web.post("/session", json={"email": ana["email"], "password": NEW},
                                  headers={"Origin": origin})
                assert answer.status_code == status, (origin, answer.text)
            assert "secure" in cookie_attributes(answer)
