"""Saving a channel: URLs with credentials are secrets (write-only, redacted where shown, kept out
of the logs, still used), and the connector's ``webhook_setup`` runs after ``check`` on every save
that changes the settings, its refusal a 422 that saves nothing."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from connectors import REGISTRY
from tests.support import CallbackServer, Running, wait_for
from tests.web import hooked

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database


def test_redact_url() -> None:
    from store.channels import redact_url

    assert redact_url("https://u:pw@shop.test:8443/r?token=t&v=2#x") == "https://***@shop.test:8443/r?token=***&v=***#x"
    assert redact_url("https://shop.test/replies") == "https://shop.test/replies"
    assert redact_url("https://u@[::1]/r") == "https://***@[::1]/r"
    assert redact_url("not a url") == "not a url"


@SQLITE_ONLY
def test_credentials_in_a_callback_url_are_secret(omnidesk: Running, callback: CallbackServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = callback.url.replace("http://", "http://shop:pw-0123456789@") + "?token=tok-0123456789"
    created = omnidesk.ok("POST", "/channels", json={"kind": "api", "name": "Shop", "config": {
        "secret": "s" * 20, "callback_url": url}})
    shown = [created, omnidesk.ok("GET", f"/channels/{created['id']}"), omnidesk.ok("GET", "/channels")]
    for answer in shown:
        text = json.dumps(answer)
        assert "pw-0123456789" not in text and "tok-0123456789" not in text, text
    assert created["config"]["callback_url"] == callback.url.replace("http://", "http://***@") + "?token=***"
    assert "callback_url" in created["secrets_set"]

    # Sending back the settings as shown keeps the real URL.
    omnidesk.ok("PATCH", f"/channels/{created['id']}", json={"config": created["config"]})
    payload = {"message_id": "m-1", "from": {"id": "c"}, "text": "hi"}
    assert omnidesk.post_inbound(created["id"], "s" * 20, payload).status_code == 202
    conv = omnidesk.ok("GET", "/conversations")["items"][0]
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "On its way"})
    wait_for(lambda: callback.requests, what="the reply delivered")
    headers, _ = callback.requests[0]
    assert headers["authorization"] == "Basic " + base64.b64encode(b"shop:pw-0123456789").decode()
    assert "pw-0123456789" not in caplog.text and "tok-0123456789" not in caplog.text


@SQLITE_ONLY
def test_webhook_setup_runs_after_check_on_save(omnidesk: Running, callback: CallbackServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "hooked", "tests.web.hooked:HookedConnector")
    hooked.calls.clear()
    config = {"secret": "s" * 20, "callback_url": callback.url}
    created = omnidesk.ok("POST", "/channels", json={"kind": "hooked", "name": "Hooked", "config": config})
    assert hooked.calls == [("check", None), ("webhook_setup", created["webhook_url"])]

    hooked.calls.clear()
    omnidesk.ok("PATCH", f"/channels/{created['id']}", json={"name": "Renamed"})
    assert hooked.calls == []
    omnidesk.ok("PATCH", f"/channels/{created['id']}", json={"config": {"timeout": 5}})
    assert hooked.calls == [("check", None), ("webhook_setup", created["webhook_url"])]

    refused = omnidesk.api("PATCH", f"/channels/{created['id']}", json={"config": {"refuse": "no https"}})
    assert refused.status_code == 422 and "refused the webhook: no https" in refused.json()["detail"]
    assert omnidesk.ok("GET", f"/channels/{created['id']}")["config"].get("refuse") is None

    before = {c["id"] for c in omnidesk.ok("GET", "/channels")["items"]}
    answer = omnidesk.api("POST", "/channels", json={"kind": "hooked", "name": "Refused",
                                                     "config": {**config, "refuse": "bad url"}})
    assert answer.status_code == 422 and "bad url" in answer.json()["detail"]
    assert {c["id"] for c in omnidesk.ok("GET", "/channels")["items"]} == before
