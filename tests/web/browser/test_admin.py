"""The admin pages in real Chromium, on both deployments: an admin creates an API channel and
sees its webhook URL (and tests it, and sees a refused setting's reason); invites an agent who
follows the one-time link, sets a password and signs in; edits an agent's teams; creates a canned
response that an agent then uses in the composer. An agent gets no admin navigation, a "not
allowed" view at the admin URLs, and 403 from the API behind them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from connectors import REGISTRY
from tests.fakes.shop import Shop
from tests.web.browser.desks import Desk, admin, sign_in, watch_errors


def test_admin_creates_an_api_channel_and_sees_its_webhook(desk: Desk, page: Any, shop: Shop) -> None:
    admin(desk, page)
    errors = watch_errors(page)
    page.click(".nav-link:has-text('Admin')")
    page.locator("#channels-table").wait_for()
    page.click("#new-channel")
    assert page.locator("#kind-settings").is_hidden()  # the kind comes first
    page.select_option("#channel-kind", "api")
    page.fill("#channel-name", "Web shop orders")
    page.fill("input[name=secret]", "s3cret-s3cret-s3cret")
    page.fill("input[name=callback_url]", shop.url)
    page.click("#channel-form button[type=submit]")

    page.wait_for_url(re.compile(r"#/admin/channels/\d+$"))
    channel_id = int(page.url.rsplit("/", 1)[1])
    made = desk.ok("GET", f"/channels/{channel_id}")
    assert made["name"] == "Web shop orders" and made["kind"] == "api"
    assert page.input_value("#channel-webhook") == made["webhook_url"] == f"{desk.url}/webhooks/{channel_id}"
    # The secret is write-only: empty on the form, "unchanged" in its place, never in the page.
    assert page.input_value("input[name=secret]") == ""
    assert page.get_attribute("input[name=secret]", "placeholder") == "unchanged"
    assert "s3cret" not in page.content()

    page.click("#channel-test")
    page.locator("#channel-test-result[data-result=ok]").wait_for()

    # A setting the server refuses: its reason shows, nothing changes.
    page.fill("input[name=callback_url]", "ftp://nowhere")
    page.click("#channel-form button[type=submit]")
    page.locator("#channel-error:has-text('callback_url')").wait_for()
    assert desk.ok("GET", f"/channels/{channel_id}")["config"]["callback_url"] == shop.url

    # In the list: its row with the same webhook URL; disable it from there.
    page.click(".admin-tab:has-text('Channels')")
    row = page.locator(f"#channels-table tr[data-id='{channel_id}']")
    assert row.locator("input.copy-value").input_value() == made["webhook_url"]
    row.locator("button:has-text('Disable')").click()
    page.locator(f"#channels-table tr[data-id='{channel_id}'] [data-status=disabled]").wait_for()
    assert desk.ok("GET", f"/channels/{channel_id}")["enabled"] is False
    assert errors == [f"PATCH {desk.url}/api/v1/channels/{channel_id}: 422"]  # the refused setting alone


def test_invite_an_agent_who_sets_a_password_and_signs_in(desk: Desk, new_page: Any) -> None:
    page = new_page()
    admin(desk, page)
    page.goto("/#/admin/agents")
    page.fill("#invite-form input[name=name]", "Nora Ferrer")
    email = f"nora.{desk.kind}@shop.test"
    page.fill("#invite-form input[name=email]", email)
    page.click("#invite-form button[type=submit]")
    link = page.locator("#invite-link")
    link.wait_for()
    url = link.input_value()
    assert re.fullmatch(rf"{re.escape(desk.url)}/invite/[\w-]+", url), url
    page.locator("#agents-table tr", has_text=email).wait_for()
    # The same email again: the server's reason shows by the form.
    page.fill("#invite-form input[name=name]", "Nora Again")
    page.fill("#invite-form input[name=email]", email)
    page.click("#invite-form button[type=submit]")
    page.locator("#invite-error:not(:empty)").wait_for()
    assert page.inner_text("#invite-error") == f"an agent with email {email} exists"

    nora = new_page()
    nora.goto(url)
    nora.fill("#invite-password", "a long enough password")
    nora.fill("#invite-again", "a long enough password")
    nora.click("#public button[type=submit]")
    nora.wait_for_selector("#me-name:has-text('Nora Ferrer')")
    nora.click("text=Sign out")
    nora.wait_for_selector("#signin-form input[name=email]", state="visible")  # signed out, then in again
    sign_in(nora, email, "a long enough password")
    assert nora.inner_text("#me-name") == "Nora Ferrer"
    # The link was for once.
    again = new_page()
    again.goto(url)
    again.locator("#public [role=alert]").wait_for()


def test_edit_an_agents_teams_and_deactivate_them(desk: Desk, page: Any) -> None:
    suffix = desk.kind
    sales = desk.ok("POST", "/teams", json={"name": f"Sales {suffix}"})
    returns = desk.ok("POST", "/teams", json={"name": f"Returns {suffix}"})
    pau = desk.agent("Pau Serra", online=False, teams=[sales["id"]])
    admin(desk, page)
    page.goto(f"/#/admin/agents/{pau['id']}")
    teams = page.locator("#agent-teams")
    teams.locator("label", has_text=f"Sales {suffix}").locator("input").uncheck()
    teams.locator("label", has_text=f"Returns {suffix}").locator("input").check()
    page.fill("#agent-capacity", "7")
    page.fill("#agent-languages", "ca, ES")
    page.click("#agent-form button[type=submit]")
    page.locator(".toast", has_text="Saved").wait_for()
    after = desk.ok("GET", f"/agents/{pau['id']}")
    assert after["teams"] == [returns["id"]] and after["capacity"] == 7 and after["languages"] == ["ca", "es"]

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#agent-active")
    page.locator("#agent-state:has-text('Deactivated')").wait_for()
    assert desk.ok("GET", f"/agents/{pau['id']}")["active"] is False
    page.click("#agent-active")  # reactivating asks nothing
    page.locator("#agent-state:has-text('Active: can')").wait_for()
    page.click("#agent-token")
    token = page.locator("#new-token").input_value()
    assert desk.ok("GET", "/me", token=token)["id"] == pau["id"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#agent-reset")
    reset = page.locator("#reset-link").input_value()
    assert desk.http.get(f"/api/v1/invites/{reset.rsplit('/', 1)[1]}").json()["email"] == pau["email"]

    # The team list shows who is in each; a taken name is refused with the server's reason.
    page.goto("/#/admin/teams")
    item = page.locator(f".team[data-id='{returns['id']}']")
    assert "Pau Serra" in item.inner_text()
    item.locator("input[name=name]").fill(f"Sales {suffix}")
    item.locator(".inline-form button[type=submit]").click()
    page.locator("#teams-error:has-text('exists')").wait_for()


def test_canned_response_made_by_an_admin_used_by_an_agent(desk: Desk, new_page: Any, shop: Shop) -> None:
    page = new_page()
    admin(desk, page)
    shortcut = f"thanks{desk.kind}"
    page.goto("/#/admin/canned")
    page.click("#new-canned")
    page.locator("#placeholders-title").wait_for()
    assert "{{contact.first_name}}" in page.inner_text(".placeholders")
    page.fill("#canned-shortcut", shortcut)
    page.fill("#canned-title", "Thanks for the order")
    page.fill("#canned-text", "Gràcies, {{contact.first_name}}! Comanda #{{conversation.number}}.")
    page.click("#canned-form button[type=submit]")
    page.locator("#canned-table tr", has_text=f"/{shortcut}").wait_for()

    ana = desk.agent("Ana Vidal")
    desk.only_online(ana["id"])
    channel = desk.api_channel(shop.url)
    desk.inbound(channel, "On és el meu paquet?", customer=f"marta-{desk.kind}", name="Marta Vila")
    agent_page = new_page()
    sign_in(agent_page, ana["email"])
    agent_page.locator(".conv-item", has_text="Marta Vila").locator("a").click()
    number = desk.ok("GET", agent_page.url.split("#")[1])["number"]
    agent_page.fill("#composer-text", "")
    agent_page.type("#composer-text", f"/{shortcut}")
    agent_page.locator("#canned-list [role=option]", has_text=f"/{shortcut}").wait_for()
    agent_page.press("#composer-text", "Enter")
    assert agent_page.input_value("#composer-text") == f"Gràcies, Marta! Comanda #{number}."


def test_an_agent_cannot_reach_the_admin_pages(desk: Desk, page: Any) -> None:
    bo = desk.agent("Bo Lind", online=False)
    sign_in(page, bo["email"])
    assert page.locator(".nav-link:has-text('Admin')").count() == 0
    for path in ("#/admin", "#/admin/channels/new", "#/admin/agents", f"#/admin/agents/{bo['id']}", "#/admin/teams",
                 "#/admin/canned"):
        page.goto("/" + path)
        page.locator("#admin-denied").wait_for()
        assert page.locator("#view form, #view table").count() == 0, path
    # The API behind the pages refuses the agent's own session too.
    statuses = page.evaluate("""async () => {
        const csrf = (await (await fetch('/api/v1/session')).json()).csrf_token;
        const write = {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                       body: JSON.stringify({name: 'Mine', shortcut: 'mine', title: 'Mine', text: 'Mine'})};
        return [(await fetch('/api/v1/channels')).status, (await fetch('/api/v1/teams', write)).status,
                (await fetch('/api/v1/canned-responses', write)).status];
    }""")
    assert statuses == [403, 403, 403], statuses


def test_kinds_the_server_does_not_know_do_not_break_the_page(desk: Desk, page: Any) -> None:
    admin(desk, page, "Olga Kind")
    errors = watch_errors(page)
    # A server whose OpenAPI description lists no kinds: the page offers every kind it has a form
    # for, and the server's refusal of one it does not know shows by the form.
    page.route("**/openapi.json", lambda route: route.fulfill(json={"components": {"schemas": {}}}))
    page.goto("/#/admin/channels/new")
    page.locator("#channel-form").wait_for()
    offered = page.locator("#channel-kind option").evaluate_all("options => options.map(o => o.value)")
    assert {"api", "email", "telegram", "whatsapp", "webchat"} <= set(offered)
    unknown = [kind for kind in offered if kind and kind not in REGISTRY]
    if not unknown:
        pytest.skip("this server knows every kind the page has a form for")
    page.select_option("#channel-kind", unknown[0])
    page.fill("#channel-name", "Not here yet")
    for field in page.locator("#kind-settings input[required]").all():
        kind = field.get_attribute("type")
        field.fill({"url": "https://example.test", "email": "a@shop.test", "number": "1"}.get(kind, "x" * 20))
    page.click("#channel-form button[type=submit]")
    page.locator("#channel-error:has-text('unknown channel kind')").wait_for()
    # The list failing to load says so, and the page stays usable.
    page.route("**/api/v1/channels", lambda route: route.fulfill(status=500, body="boom"))
    page.goto("/#/admin/channels")
    page.locator("#channels-error:not(:empty)").wait_for()
    page.click(".admin-tab:has-text('Teams')")
    page.locator("#team-form").wait_for()
    assert [e for e in errors if "pageerror" in e] == []


def test_testing_a_channel_whose_server_does_not_answer_shows_why(desk: Desk, page: Any) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    mailbox = desk.ok("POST", "/channels", params={"verify": "false"}, json={
        "kind": "email", "name": f"Mailbox {desk.kind}", "enabled": False, "config": {
            "address": "hola@shop.test", "imap_host": "127.0.0.1", "imap_port": port, "imap_security": "none",
            "imap_password": "not-used", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none"}})
    admin(desk, page, "Olga Test")
    page.goto("/#/admin/channels")
    row = page.locator(f"#channels-table tr[data-id='{mailbox['id']}']")
    row.locator("button:has-text('Test')").click()
    result = row.locator(".test-result[data-result=error]")
    result.wait_for()
    assert "Test failed" in result.inner_text() and "unreachable" in result.inner_text()
    # The edit page of the same channel: its secret is not shown, and the kind's fields are there.
    page.goto(f"/#/admin/channels/{mailbox['id']}")
    assert page.input_value("input[name=imap_host]") == "127.0.0.1"
    assert page.input_value("input[name=imap_password]") == ""
