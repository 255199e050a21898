"""The routing admin pages in real Chromium, on both deployments: an admin creates a rule on the
Rules page and it then applies to a customer's message through the API channel (tag and
priority); malformed rules show the server's reason (or the JSON error) and change nothing; a rule
is edited, disabled and deleted (after confirming). A team's routing settings and the shop's hours
and SLA targets are saved from the teams page and read back through the API; an agent's capacities
per group and skills from their page. axe finds no serious or critical violation on the new pages;
an agent who is not an admin cannot open them, nor call the API behind them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.fakes.shop import Shop
from tests.support import wait_for
from tests.web.browser.desks import Desk, admin, sign_in, watch_errors
from tests.web.browser.test_admin_a11y import serious


def conversation_of(desk: Desk, customer: str) -> dict[str, Any]:
    """The customer's conversation once its automations have run (they tell its language, in the
    same transaction as the rules)."""
    def found() -> dict[str, Any] | None:
        return next((item for item in desk.ok("GET", "/conversations?limit=200")["items"]
                     if item["contact"]["name"] == customer and item["language"]), None)

    # 2 s here run alone; a full CI run on a loaded machine once took over 20 s (a worker just started).
    return wait_for(found, timeout=60, what=f"{customer}'s conversation, sorted")


def rules_named(desk: Desk, name: str) -> list[dict[str, Any]]:
    return [rule for rule in desk.ok("GET", "/rules")["items"] if rule["name"] == name]


def test_a_rule_made_on_the_page_applies_to_the_next_message(desk: Desk, page: Any, shop: Shop) -> None:
    admin(desk, page)
    errors = watch_errors(page)
    page.click(".nav-link:has-text('Admin')")
    page.click(".admin-tab:has-text('Routing rules')")
    page.locator("#rules-table").wait_for()
    page.click("#new-rule")
    # The form starts from an example the server would take.
    assert json.loads(page.input_value("#rule-conditions")) == [{"type": "words", "any": ["refund", "reembolso"]}]
    assert json.loads(page.input_value("#rule-actions"))[0] == {"type": "set_priority", "value": "high"}
    name = f"Refunds {desk.kind}"
    page.fill("#rule-name", name)
    page.fill("#rule-conditions", '[{"type": "words", "any": ["reembolso"]}]')
    page.fill("#rule-actions", '[{"type": "set_priority", "value": "urgent"}, {"type": "add_tag", "value": "refund"}]')
    page.click("#rule-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/admin/rules$"))
    [made] = rules_named(desk, name)
    assert made["enabled"] is True
    assert made["actions"] == [{"type": "set_priority", "value": "urgent"}, {"type": "add_tag", "value": "refund"}]
    row = page.locator(f"#rules-table tr[data-id='{made['id']}']")
    assert row.locator(".rule-summary").inner_text() == "text has reembolso → priority Urgent; tag refund"

    channel = desk.api_channel(shop.url)
    desk.inbound(channel, "Hola, vull un reembolso de la comanda que vaig fer dilluns", customer=f"rita-{desk.kind}", name=f"Rita {desk.kind}")
    desk.inbound(channel, "Bon dia, on és el meu paquet? Encara no ha arribat a casa", customer=f"joan-{desk.kind}", name=f"Joan {desk.kind}")
    refund = conversation_of(desk, f"Rita {desk.kind}")
    assert "refund" in refund["tags"] and refund["priority_name"] == "urgent"
    other = conversation_of(desk, f"Joan {desk.kind}")  # the rule's words absent: nothing set
    assert "refund" not in other["tags"] and other["priority_name"] == "normal"
    assert errors == []


def test_malformed_rules_show_why_and_change_nothing(desk: Desk, page: Any) -> None:
    admin(desk, page, "Olga Rules")
    before = desk.ok("GET", "/rules")["items"]
    page.goto("/#/admin/rules/new")
    page.fill("#rule-name", "Broken")
    # A team that does not exist: the server's own sentence.
    page.fill("#rule-actions", '[{"type": "set_team", "team_id": 999999}]')
    page.click("#rule-form button[type=submit]")
    page.locator("#rule-error:not(:empty)").wait_for()
    assert page.inner_text("#rule-error") == "actions: set_team: no team 999999"
    # A priority the router does not know: the validation's reason, naming the field.
    page.fill("#rule-actions", '[{"type": "set_priority", "value": "very"}]')
    page.click("#rule-form button[type=submit]")
    page.locator("#rule-error:has-text('set_priority')").wait_for()
    assert page.inner_text("#rule-error") == (
        "actions.0.set_priority.value: Input should be 'urgent', 'high', 'normal' or 'low'")
    # Not JSON at all: said before anything is sent.
    page.fill("#rule-conditions", '[{"type": "words", "any": ["x"]')
    page.click("#rule-form button[type=submit]")
    page.locator("#rule-error:has-text('Not valid JSON in Conditions')").wait_for()
    assert desk.ok("GET", "/rules")["items"] == before
    assert page.url.endswith("#/admin/rules/new")


def test_edit_disable_and_delete_a_rule(desk: Desk, page: Any) -> None:
    team = desk.ok("POST", "/teams", json={"name": f"Wholesale {desk.kind}"})
    rule = desk.ok("POST", "/rules", json={"name": f"B2B {desk.kind}", "conditions": [
        {"type": "contact", "attribute": "email_domain", "equals": "bigshop.example"},
        {"type": "business_hours", "is": "open"}],
        "actions": [{"type": "set_team", "team_id": team["id"]}, {"type": "add_skill", "value": "B2B"}]})
    admin(desk, page, "Olga Edit")
    page.goto("/#/admin/rules")
    row = page.locator(f"#rules-table tr[data-id='{rule['id']}']")
    assert row.locator(".rule-summary").inner_text() == (
        f"contact email_domain = bigshop.example and within business hours → team Wholesale {desk.kind}; skill B2B")
    row.locator("a", has_text="Edit").click()
    page.locator("#rule-form").wait_for()
    assert json.loads(page.input_value("#rule-actions")) == rule["actions"]
    page.fill("#rule-position", "-5")
    page.fill("#rule-name", f"B2B first {desk.kind}")
    page.click("#rule-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/admin/rules$"))
    after = desk.ok("GET", f"/rules/{rule['id']}")
    assert (after["position"], after["name"], after["conditions"]) == (-5, f"B2B first {desk.kind}", rule["conditions"])
    assert desk.ok("GET", "/rules")["items"][0]["id"] == rule["id"]  # runs first now
    assert page.locator("#rules-table tbody tr").first.get_attribute("data-id") == str(rule["id"])

    row = page.locator(f"#rules-table tr[data-id='{rule['id']}']")
    row.locator("button.rule-toggle").click()
    page.locator(f"#rules-table tr[data-id='{rule['id']}'] .rule-enabled:has-text('No')").wait_for()
    assert desk.ok("GET", f"/rules/{rule['id']}")["enabled"] is False

    page.once("dialog", lambda dialog: dialog.dismiss())  # changing one's mind keeps it
    page.locator(f"#rules-table tr[data-id='{rule['id']}'] button.danger").click()
    assert desk.api("GET", f"/rules/{rule['id']}").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#rules-table tr[data-id='{rule['id']}'] button.danger").click()
    page.locator(f"#rules-table tr[data-id='{rule['id']}']").wait_for(state="detached")
    assert desk.api("GET", f"/rules/{rule['id']}").status_code == 404


def test_team_routing_and_shop_settings_are_saved(desk: Desk, page: Any) -> None:
    team = desk.ok("POST", "/teams", json={"name": f"Chat desk {desk.kind}"})
    admin(desk, page, "Olga Teams")
    page.goto("/#/admin/teams")
    card = page.locator(f".team[data-id='{team['id']}']")
    card.locator("summary").click()
    form = card.locator("form.team-routing")
    assert form.locator("select[name=policy]").input_value() == "least_loaded"
    assert form.locator("input[name=skill_wait_seconds]").input_value() == "120"
    form.locator("select[name=policy]").select_option("round_robin")
    form.locator("input[name=capacity_email]").fill("8")
    form.locator("input[name=capacity_chat]").fill("3")
    form.locator("input[name=skill_wait_seconds]").fill("60")
    form.locator("input[name=sticky_seconds]").fill("600")
    form.locator("input[name=return_on_away]").check()
    form.locator("input[name=reassign_after]").fill("900")
    hours = {"timezone": "Europe/Madrid", "week": {"mon": [["09:00", "14:00"], ["15:00", "18:00"]]}, "country": "ES"}
    form.locator("textarea[name=hours]").fill(json.dumps(hours))
    form.locator("button[type=submit]").click()
    page.locator(".toast", has_text="Saved").wait_for()
    saved = desk.ok("GET", f"/teams/{team['id']}")
    assert (saved["policy"], saved["capacities"], saved["skill_wait_seconds"], saved["sticky_seconds"],
            saved["return_on_away"], saved["reassign_after"]) == ("round_robin", {"email": 8, "chat": 3}, 60, 600, True, 900)
    assert saved["hours"]["timezone"] == "Europe/Madrid" and saved["hours"]["week"]["mon"] == hours["week"]["mon"]

    # Hours the server refuses: its reason by the form, nothing changed.
    form.locator("textarea[name=hours]").fill('{"timezone": "Mars/Olympus"}')
    form.locator("input[name=reassign_after]").fill("")
    form.locator("button[type=submit]").click()
    card.locator(f"#team-{team['id']}-routing-error:has-text('hours')").wait_for()
    assert desk.ok("GET", f"/teams/{team['id']}")["reassign_after"] == 900
    # Emptied: the shop's hours, never reassigned, no own capacities; read back after a reload.
    form.locator("textarea[name=hours]").fill("")
    form.locator("input[name=capacity_email]").fill("")
    form.locator("input[name=capacity_chat]").fill("")
    form.locator("button[type=submit]").click()
    wait_for(lambda: desk.ok("GET", f"/teams/{team['id']}")["hours"] is None, what="hours cleared")
    cleared = desk.ok("GET", f"/teams/{team['id']}")
    assert (cleared["reassign_after"], cleared["capacities"], cleared["policy"]) == (None, {}, "round_robin")
    page.reload()
    card.locator("summary").click()
    assert form.locator("select[name=policy]").input_value() == "round_robin"
    assert form.locator("input[name=reassign_after]").input_value() == ""

    # The shop's default hours and SLA targets.
    shop_hours = {"timezone": "Europe/Lisbon", "week": {"tue": [["08:00", "16:00"]]}, "closed": ["2026-12-24"]}
    page.fill("#shop-hours", json.dumps(shop_hours))
    page.click("#shop-hours-form button[type=submit]")
    wait_for(lambda: (desk.ok("GET", "/settings/hours")["hours"] or {}).get("timezone") == "Europe/Lisbon",
             what="shop hours saved")
    assert desk.ok("GET", "/settings/hours")["hours"]["closed"] == ["2026-12-24"]
    sla = json.loads(page.input_value("#shop-sla"))  # what the server has now
    sla["targets"]["whatsapp"] = {"first": 1800, "next": 3600}
    page.fill("#shop-sla", json.dumps(sla))
    page.click("#shop-sla-form button[type=submit]")
    wait_for(lambda: "whatsapp" in desk.ok("GET", "/settings/sla")["targets"], what="SLA saved")
    assert desk.ok("GET", "/settings/sla")["targets"]["whatsapp"] == {"first": 1800, "next": 3600}
    page.fill("#shop-sla", '{"near": 2}')
    page.click("#shop-sla-form button[type=submit]")
    page.locator("#shop-sla-error:has-text('near')").wait_for()
    assert desk.ok("GET", "/settings/sla")["near"] == sla["near"]


def test_an_agents_capacities_and_skills(desk: Desk, page: Any) -> None:
    pau = desk.agent("Pau Routing", online=False, capacities={"chat": 2}, skills=["returns"])
    admin(desk, page, "Olga Agents")
    page.goto(f"/#/admin/agents/{pau['id']}")
    box = page.locator("#agent-capacities")
    assert box.locator("input[name=capacity_chat]").input_value() == "2"
    assert box.locator("input[name=capacity_email]").input_value() == ""
    assert page.input_value("#agent-skills") == "returns"
    box.locator("input[name=capacity_email]").fill("8")
    box.locator("input[name=capacity_chat]").fill("")
    page.fill("#agent-skills", "returns, B2B,  big orders ,returns")
    page.click("#agent-form button[type=submit]")
    page.locator(".toast", has_text="Saved").wait_for()
    after = desk.ok("GET", f"/agents/{pau['id']}")
    assert after["capacities"] == {"email": 8} and sorted(after["skills"]) == ["B2B", "big orders", "returns"]


def test_an_agent_cannot_open_the_routing_pages(desk: Desk, page: Any) -> None:
    rule = desk.ok("POST", "/rules", json={"name": "Any", "enabled": False, "actions": [{"type": "add_tag", "value": "x"}]})
    bo = desk.agent("Bo Routing", online=False)
    sign_in(page, bo["email"])
    for path in ("#/admin/rules", "#/admin/rules/new", f"#/admin/rules/{rule['id']}", "#/admin/teams"):
        page.goto("/" + path)
        page.locator("#admin-denied").wait_for()
        assert page.locator("#view form, #view table, #view textarea").count() == 0, path
    statuses = page.evaluate("""async (id) => {
        const csrf = (await (await fetch('/api/v1/session')).json()).csrf_token;
        const write = (method, body) => ({method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                                          body: JSON.stringify(body)});
        return [(await fetch('/api/v1/rules')).status,
                (await fetch('/api/v1/rules', write('POST', {name: 'Mine', actions: [{type: 'add_tag', value: 'm'}]}))).status,
                (await fetch(`/api/v1/rules/${id}`, write('PATCH', {enabled: true}))).status,
                (await fetch('/api/v1/settings/hours', write('PUT', {hours: null}))).status,
                (await fetch('/api/v1/settings/sla')).status];
    }""", rule["id"])
    assert statuses == [403, 403, 403, 403, 403], statuses
    assert desk.ok("GET", f"/rules/{rule['id']}")["enabled"] is False


PAGES = [
    ("#/admin/rules", "#rules-table tbody tr[data-id]"),
    ("#/admin/rules/new", "#rule-form"),
    ("#/admin/rules/{rule}", "#rule-form"),
    ("#/admin/teams", "#shop-settings"),
    ("#/admin/agents/{agent}", "#agent-capacities"),
]


@pytest.mark.parametrize("path, ready", PAGES, ids=[p for p, _ in PAGES])
def test_no_serious_violation(desk: Desk, page: Any, path: str, ready: str) -> None:
    team = desk.ok("POST", "/teams", json={"name": f"Axe {path}"})
    rule = desk.ok("POST", "/rules", json={"name": "Axe", "conditions": [{"type": "language", "in": ["ca"]}],
                                           "actions": [{"type": "set_team", "team_id": team["id"]}]})
    olga = desk.agent("Olga Axe", role="admin", online=False)
    sign_in(page, olga["email"])
    page.goto("/" + path.format(rule=rule["id"], agent=olga["id"]))
    page.locator(ready).first.wait_for()
    if path.endswith("/teams"):
        for summary in page.locator(".team-routing-box summary").all():  # every team's form open
            summary.click()
    assert serious(page) == []
