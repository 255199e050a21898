"""The inbox at work in real Chromium, on both deployments: a customer's message appears in the
open inbox without a reload; a reply goes out and its delivery tick moves; a private note stays
inside; resolve and reopen; assigning to a colleague who sees it arrive in their own browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.shop import Shop
from tests.web.browser.desks import Desk, sign_in


@pytest.fixture(scope="module")
def shop(desk: Desk) -> Iterator[Shop]:
    """The shop's endpoint for the API channel's replies (one per deployment)."""
    server = Shop()
    yield server
    server.close()


@pytest.fixture(scope="module")
def channel(desk: Desk, shop: Shop) -> tuple[int, str]:
    return desk.api_channel(shop.url)


def no_reload(page: Any) -> list[str]:
    """Page loads after this call (a reload or a navigation to another document; not a change of
    the address's #fragment, which is how the inbox moves between views)."""
    seen: list[str] = []
    page.on("load", lambda loaded: seen.append(loaded.url))
    return seen


def test_message_arrives_live_reply_tick_note_resolve_reopen(desk: Desk, page: Any, shop: Shop,
                                                             channel: tuple[int, str]) -> None:
    ana = desk.agent("Ana Puig")
    desk.only_online(ana["id"])
    sign_in(page, ana["email"])
    navigations = no_reload(page)

    desk.inbound(channel, "Hola! On és la meva comanda 1042?", customer="marta-1", name="Marta Vila")
    item = page.locator(".conv-item", has_text="Marta Vila")
    item.wait_for()
    # (the preview of the last message: once the list carries it)
    item.locator("a").click()
    page.locator(".msg[data-direction=in]", has_text="comanda 1042").wait_for()

    page.fill("#composer-text", "Surt demà al matí!")
    page.press("#composer-text", "Control+Enter")
    reply = page.locator(".msg[data-direction=out]", has_text="Surt demà al matí!")
    reply.wait_for()
    reply.locator(".tick[data-status=sent], .tick[data-status=delivered]").wait_for()
    assert [b["text"] for b in shop.bodies() if b["to"]["id"] == "marta-1"] == ["Surt demà al matí!"]

    page.locator("#composer-text").blur()
    page.keyboard.press("n")  # private note
    page.fill("#composer-text", "Client habitual: enviar-li un codi de descompte")
    page.press("#composer-text", "Control+Enter")
    page.locator(".msg.is-private", has_text="codi de descompte").wait_for()
    assert page.locator(".msg.is-private .tick").count() == 0
    assert all("descompte" not in b["text"] for b in shop.bodies())

    page.click("#resolve")
    page.locator("#conversation-status[data-status=resolved]").wait_for()
    page.click("#reopen")
    page.locator("#conversation-status[data-status=open]").wait_for()
    conversation_id = int(re.search(r"/conversations/(\d+)", page.url).group(1))
    assert desk.ok("GET", f"/conversations/{conversation_id}")["status"] == "open"
    assert page.locator(".msg").count() == 3
    assert navigations == [], navigations


def test_assign_to_colleague_who_sees_it_arrive(desk: Desk, new_page: Any, channel: tuple[int, str]) -> None:
    ana = desk.agent("Ana Soler")
    jan = desk.agent("Jan Kowalski", online=False)
    desk.only_online(ana["id"])
    mine, theirs = new_page(), new_page()
    sign_in(mine, ana["email"])
    desk.inbound(channel, "Necessito canviar la talla", customer="pau-7", name="Pau Serra")
    mine.locator(".conv-item", has_text="Pau Serra").locator("a").click()
    mine.locator(".msg[data-direction=in]", has_text="canviar la talla").wait_for()

    sign_in(theirs, jan["email"])  # Jan's Mine: empty so far
    theirs.locator(".empty", has_text="No conversations here").wait_for()
    navigations = no_reload(theirs)
    mine.select_option("#assignee", str(jan["id"]))
    arrived = theirs.locator(".conv-item", has_text="Pau Serra")
    arrived.wait_for()
    # Ana (no team) may not see a conversation of Jan's: her page says so instead of going stale.
    mine.locator("[role=alert]", has_text="You can no longer see this conversation").wait_for()
    arrived.locator("a").click()
    theirs.locator(".msg[data-direction=in]", has_text="canviar la talla").wait_for()
    assert navigations == [], navigations
