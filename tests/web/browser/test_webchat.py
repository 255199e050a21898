"""The chat widget in real Chromium: a shop page served by the test (on its own origin, under a
strict Content-Security-Policy that allows omnidesk's origin) embeds ``/widget.js``; the agent's
inbox runs in another browser context. Chat both ways, typing, read receipts; the visitor's page
offline while both sides write, then every message once, in order, on both sides; two tabs of one
visitor share one conversation; a verified visitor joins their contact, a forged one is refused;
a page on another origin is refused."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.webchat import identity_hash
from tests.support import free_port, wait_for
from tests.web.browser.desks import Desk, sign_in

SECRET = "browser-identity-secret-0001"


@pytest.fixture(scope="module", autouse=True)
def quick_leaving() -> Iterator[None]:
    """A visitor counts as gone 2 s after their last stream closed (set before omnidesk starts)."""
    saved = os.environ.get("OMNIDESK_WEBCHAT_LEFT_AFTER")
    os.environ["OMNIDESK_WEBCHAT_LEFT_AFTER"] = "2"
    yield
    if saved is None:
        os.environ.pop("OMNIDESK_WEBCHAT_LEFT_AFTER", None)
    else:
        os.environ["OMNIDESK_WEBCHAT_LEFT_AFTER"] = saved


class ShopSite:
    """The shop's pages on 127.0.0.1:<port>, each embedding the widget of ``channel``."""

    def __init__(self, omnidesk: str) -> None:
        self.omnidesk, self.channel, self.identity = omnidesk, 0, ""
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                attrs = f' data-identity="{site.identity}"' if site.identity and "verified" in self.path else ""
                body = (f'<!doctype html><html lang="es"><head><meta charset="utf-8"><title>Shop</title></head>'
                        f"<body><h1>Tienda</h1><script src=\"{site.omnidesk}/widget.js\" data-channel=\"{site.channel}\""
                        f"{attrs} async></script></body></html>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", f"default-src 'self'; script-src {site.omnidesk}; "
                                 f"style-src 'self'; connect-src {site.omnidesk}; img-src {site.omnidesk}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(desk: Desk) -> Iterator[ShopSite]:
    shop = ShopSite(desk.url)
    other = ShopSite(desk.url)
    shop.other = other  # type: ignore[attr-defined]
    channel = desk.ok("POST", "/channels", json={"kind": "webchat", "name": "Shop chat", "config": {
        "allowed_origins": [shop.url], "identity_secret": SECRET, "greeting": "¡Hola! ¿En qué te ayudamos?"}})
    shop.channel = other.channel = channel["id"]
    yield shop
    shop.stop()
    other.stop()


def _visitor(new_page: Callable[[], Any], url: str) -> Any:
    page = new_page()
    page.goto(url)
    page.locator(".launcher").wait_for()
    return page


def _bubbles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".log .msg:not(.greeting) .text").all_inner_texts()]


def test_chat_both_ways_typing_receipts_offline_and_two_tabs(desk: Desk, new_page: Callable[[], Any],
                                                               site: ShopSite) -> None:
    ana = desk.agent("Ana Puig", languages=["es", "en"])
    desk.only_online(ana["id"])
    visitor = _visitor(new_page, site.url + "/")
    assert visitor.locator(".launcher").inner_text() == "Chatea con nosotros"  # the page's language
    visitor.click(".launcher")
    visitor.locator(".greeting").wait_for()
    visitor.fill("textarea", "Hola, ¿dónde está mi pedido? 📦")
    visitor.press("textarea", "Enter")

    visitor.locator(".msg.in .tick").wait_for()  # stored
    agent = new_page()
    sign_in(agent, ana["email"])
    agent.locator(".conv-item", has_text="dónde está mi pedido").locator("a").click()
    agent.locator(".msg[data-direction=in]", has_text="mi pedido").wait_for()
    visitor.locator(".msg.in .tick", has_text="Leído").wait_for()  # the agent opened it: read

    # The visitor typing shows in the inbox. Typed key by key over more than the widget's 3 s between
    # typing notices, as a person types: a notice goes out whenever the last one was sent.
    visitor.locator("textarea").press_sequentially("sigo aquí", delay=400)
    agent.locator(".typing, #typing, [class*=typing]", has_text="typing").first.wait_for()
    visitor.press("textarea", "Enter")
    agent.fill("#composer-text", "¡Sale mañana!")  # the agent typing shows in the widget
    visitor.locator(".typing", has_text="escribiendo").wait_for()
    agent.press("#composer-text", "Control+Enter")
    visitor.locator(".msg.out .text", has_text="¡Sale mañana!").wait_for()
    agent.locator(".msg[data-direction=out] .tick[data-status=read]").wait_for()  # the visitor read it

    # The visitor's page goes offline; both sides write meanwhile.
    visitor.context.set_offline(True)
    visitor.fill("textarea", "offline 1")
    visitor.press("textarea", "Enter")
    agent.fill("#composer-text", "agent while offline")
    agent.press("#composer-text", "Control+Enter")
    agent.locator(".msg[data-direction=out]", has_text="agent while offline").wait_for()
    visitor.fill("textarea", "offline 2")
    visitor.press("textarea", "Enter")
    visitor.context.set_offline(False)
    visitor.evaluate("window.dispatchEvent(new Event('online'))")
    want = ["Hola, ¿dónde está mi pedido? 📦", "sigo aquí", "¡Sale mañana!", "agent while offline", "offline 1", "offline 2"]
    wait_for(lambda: _bubbles(visitor) == want, what=f"the visitor's messages in order: {_bubbles(visitor)}")
    agent.locator(".msg[data-direction=in]", has_text="offline 2").wait_for()
    inbox = [t.strip() for t in agent.locator(".msg .msg-text, .msg .text, .msg p").all_inner_texts()]
    for text in want:
        assert sum(text in line for line in inbox) == 1, (text, inbox)

    # A second tab of the same visitor shows the same conversation, and follows it live.
    second = visitor.context.new_page()
    second.goto(site.url + "/")
    wait_for(lambda: _bubbles(second) == want, what="the second tab's messages")
    agent.fill("#composer-text", "to both tabs")
    agent.press("#composer-text", "Control+Enter")
    for page in (visitor, second):
        page.locator(".msg.out .text", has_text="to both tabs").wait_for()
    conversations = [c for c in desk.ok("GET", "/conversations")["items"] if c["channel"]["kind"] == "webchat"] \
        if "channel" in desk.ok("GET", "/conversations")["items"][0] else None
    assert conversations is None or len(conversations) == 1


def test_verified_joins_forged_refused_other_origin_refused(desk: Desk, new_page: Callable[[], Any],
                                                            site: ShopSite) -> None:
    marta = {"id": "c-77", "email": "marta77@example.com", "name": "Marta Vila", "hash": identity_hash(SECRET, "c-77")}
    site.identity = json.dumps(marta).replace('"', "&quot;")
    page = _visitor(new_page, site.url + "/verified")
    page.click(".launcher")
    page.fill("textarea", "soy Marta")
    page.press("textarea", "Enter")
    wait_for(lambda: any(c["contact"]["name"] == "Marta Vila" for c in desk.ok("GET", "/conversations")["items"]),
             what="the verified visitor's conversation under her name")
    forged = dict(marta, hash="0" * 64)
    site.identity = json.dumps(forged).replace('"', "&quot;")
    refused = _visitor(new_page, site.url + "/verified")
    refused.locator("[data-refused='401']").wait_for(state="attached")
    assert refused.locator(".launcher").is_disabled()

    other = _visitor(new_page, site.other.url + "/")  # type: ignore[attr-defined]
    # omnidesk answers the preflight 403 without CORS headers: the browser refuses the answer itself
    other.locator("[data-refused]").wait_for(state="attached")
    assert other.locator(".launcher").inner_text() == "Este chat no está disponible en esta página."
    assert other.locator(".launcher").is_disabled()


def test_nobody_online_email_left_reply_later_arrives_by_mail(desk: Desk, new_page: Callable[[], Any], site: ShopSite,
                                                              dovecot: Any, smtp_sink: Any) -> None:
    user, _ = dovecot.add_user()
    mail = desk.ok("POST", "/channels", json={"kind": "email", "name": "Shop mail", "config": {
        "address": "shop@example.com", **dovecot.imap_settings(user), **smtp_sink.settings()}})
    desk.ok("PATCH", f"/channels/{site.channel}", json={"config": {"fallback_email_channel_id": mail["id"]}})
    time.sleep(5.5)  # the widget endpoints' cached settings
    rita = desk.agent("Rita Sousa", online=False, languages=["es"])
    desk.only_online()
    visitor = _visitor(new_page, site.url + "/")
    visitor.click(".launcher")
    visitor.locator(".note", has_text="Ahora no hay nadie").wait_for()
    visitor.fill("input[type=email]", "lucia@example.com")
    visitor.click("form.email button[type=submit]")
    visitor.locator(".note", has_text="lucia@example.com").wait_for()
    visitor.fill("textarea", "¿Tenéis la talla 38?")
    visitor.press("textarea", "Enter")
    visitor.locator(".msg.in .tick").wait_for()
    visitor.close()  # the visitor leaves

    agent = new_page()
    sign_in(agent, rita["email"])
    conversation = wait_for(lambda: next((c for c in desk.ok("GET", "/conversations")["items"]
                                          if "talla 38" in json.dumps(c)), None), what="the visitor's conversation")
    agent.goto(f"/#/conversations/{conversation['id']}")
    agent.locator(".msg[data-direction=in]", has_text="talla 38").wait_for()
    time.sleep(2.5)  # gone for longer than OMNIDESK_WEBCHAT_LEFT_AFTER
    agent.fill("#composer-text", "Sí, la tenemos.")
    agent.press("#composer-text", "Control+Enter")
    [received] = smtp_sink.wait_for(1, timeout=20)
    assert received.rcpt_tos == ["lucia@example.com"] and "Sí, la tenemos." in received.message.get_body(("plain",)).get_content()
    agent.locator(".msg[data-direction=out]", has_text="Sí, la tenemos.").nth(1).wait_for()  # the chat message and the email
