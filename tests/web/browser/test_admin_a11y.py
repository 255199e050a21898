"""axe-core (axe-playwright-python) in the same Chromium on every admin page: the channels list,
a new channel's form (kind chosen) and a channel's page, the agents list and an agent's page,
teams, canned responses and their form. No serious or critical violation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.browser.desks import Desk, sign_in

PAGES = [
    ("#/admin/channels", "#channels-table"),
    ("#/admin/channels/new", "#channel-form"),
    ("#/admin/channels/{channel}", "#channel-webhook"),
    ("#/admin/agents", "#agents-table tbody tr"),
    ("#/admin/agents/{agent}", "#agent-form"),
    ("#/admin/teams", "#teams-list .team"),
    ("#/admin/canned", "#canned-table"),
    ("#/admin/canned/new", "#canned-form"),
]


def serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("path, ready", PAGES, ids=[p for p, _ in PAGES])
def test_no_serious_violation(desk: Desk, page: Any, path: str, ready: str) -> None:
    channel = desk.ok("GET", "/channels")["items"] or [desk.ok("POST", "/channels", json={
        "kind": "api", "name": "Shop backend", "config": {"secret": "x" * 20, "callback_url": "http://127.0.0.1:9/"},
        "enabled": False}, params={"verify": "false"})]
    if not desk.ok("GET", "/teams")["items"]:
        desk.ok("POST", "/teams", json={"name": "Support"})
    olga = desk.agent("Olga Admin", role="admin", teams=["Support"])
    sign_in(page, olga["email"])
    page.goto("/" + path.format(channel=channel[0]["id"], agent=olga["id"]))
    page.locator(ready).first.wait_for()
    if path.endswith("/channels/new"):
        page.select_option("#channel-kind", "email")  # the longest form
        page.locator("#kind-settings input[name=imap_host]").wait_for()
    assert serious(page) == []


def test_axe_finds_a_planted_violation(desk: Desk, page: Any) -> None:
    """The check above can fail: an input without a label, added to the page, is found."""
    olga = desk.agent("Olga Admin", role="admin")
    sign_in(page, olga["email"])
    page.goto("/#/admin/teams")
    page.locator("#team-form").wait_for()
    assert serious(page) == []
    page.evaluate("document.querySelector('#team-form').append(document.createElement('input'))")
    assert any(v.startswith("label (critical)") for v in serious(page))
