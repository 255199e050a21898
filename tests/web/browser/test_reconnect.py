"""The inbox after a dropped connection, in real Chromium on both deployments: the agent's pages
go offline, conversations change meanwhile (new customer messages, a reassignment, a resolve, a
new conversation), the pages come back: everything shows, once, in order, without a reload."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.shop import Shop
from tests.support import wait_for
from tests.web.browser.desks import Desk, sign_in
from tests.web.browser.test_inbox import no_reload


@pytest.fixture(scope="module")
def channel(desk: Desk) -> Iterator[tuple[int, str]]:
    shop = Shop()
    yield desk.api_channel(shop.url)
    shop.close()


def conversation_of(desk: Desk, customer: str, assignee: int) -> dict[str, Any]:
    """The customer's conversation, once the router has given it to ``assignee``."""
    def routed() -> dict[str, Any] | None:
        found = [c for c in desk.ok("GET", "/conversations?limit=200")["items"] if c["contact"]["name"] == customer]
        return found[0] if found and found[0]["assignee_id"] == assignee else None

    return wait_for(routed, timeout=15, interval=0.1, what=f"{customer}'s conversation routed")


def ids(page: Any, selector: str) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.dataset.id)")


def test_offline_then_back_everything_once_in_order(desk: Desk, new_page: Any, channel: tuple[int, str]) -> None:
    ana = desk.agent("Ana Roca")
    bo = desk.agent("Bo Lind", online=False)
    desk.only_online(ana["id"])
    for customer in ("Alba", "Biel"):
        desk.inbound(channel, f"Hola, soc la {customer}", customer=customer.lower(), name=customer)
    alba, biel = (conversation_of(desk, name, ana["id"]) for name in ("Alba", "Biel"))

    listing, reading = new_page(), new_page()
    sign_in(listing, ana["email"])
    sign_in(reading, ana["email"])
    reading.goto(f"/#/conversations/{alba['id']}")
    reading.locator(".msg[data-direction=in]", has_text="soc la Alba").wait_for()
    desk.inbound(channel, "Hola, soc la Carla", customer="carla", name="Carla")  # seen live by both pages
    carla = conversation_of(desk, "Carla", ana["id"])
    for name in ("Alba", "Biel", "Carla"):
        listing.locator(".conv-item", has_text=name).wait_for()
    loads = no_reload(listing), no_reload(reading)
    streams: list[str] = []
    for page in (listing, reading):
        page.on("request", lambda r: streams.append(r.url) if "/api/v1/events" in r.url else None)

    for page in (listing, reading):
        page.context.set_offline(True)
    texts = [f"missatge {n} de l'Alba" for n in range(1, 4)]
    for text in texts:
        desk.inbound(channel, text, customer="alba", name="Alba")
    desk.ok("POST", f"/conversations/{biel['id']}/assign", json={"agent_id": bo["id"]})
    desk.ok("POST", f"/conversations/{carla['id']}/resolve")
    desk.inbound(channel, "Sóc nou per aquí", customer="dani", name="Dani")
    dani = conversation_of(desk, "Dani", ana["id"])

    assert streams == []  # nothing could be fetched meanwhile
    for page in (listing, reading):
        page.context.set_offline(False)

    # The open conversation: the three new messages, each once, after the first, in order.
    reading.locator(".msg", has_text=texts[-1]).wait_for()
    shown = reading.locator(".msg[data-direction=in] .msg-text").all_inner_texts()
    assert shown == ["Hola, soc la Alba", *texts]
    assert len(set(ids(reading, ".msg"))) == len(ids(reading, ".msg")) == 4
    assert reading.locator(".msg-text", has_text=texts[0]).count() == 1

    # The list: Dani arrived, Biel left (Bo's now), Carla resolved; every item once.
    listing.locator(".conv-item", has_text="Dani").wait_for()
    listing.locator(".conv-item", has_text="Biel").wait_for(state="detached")
    listing.locator(f".conv-item[data-id='{carla['id']}'][data-status=resolved]").wait_for()
    listed = ids(listing, ".conv-item")
    assert len(listed) == len(set(listed))
    assert str(dani["id"]) in listed and str(biel["id"]) not in listed and str(alba["id"]) in listed
    assert loads == ([], [])
    # Both pages resumed their stream after the last event they had seen (not a reload).
    assert len(streams) == 2 and all(re.search(r"/api/v1/events\?after=\d+$", url) for url in streams), streams
