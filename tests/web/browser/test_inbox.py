"""The inbox at work in real Chromium, on both deployments: a customer's message appears in the
open inbox without a reload; a reply goes out and its delivery tick moves; a private note stays
inside; resolve and reopen; assigning to a colleague who sees it arrive in their own browser."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.fakes.shop import Shop
from tests.support import wait_for
from tests.web.browser.desks import Desk, presence_writes, sign_in, wait_in_page, wait_quiet, watch_errors


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
    errors = watch_errors(page)
    sign_in(page, ana["email"])
    navigations = no_reload(page)

    desk.inbound(channel, "Hola! On és la meva comanda 1042?", customer="marta-1", name="Marta Vila")
    item = page.locator(".conv-item", has_text="Marta Vila")
    item.wait_for()
    assert "On és la meva comanda 1042?" in item.inner_text()  # the preview of the last message
    assert "API" in item.locator(".chip").inner_text()  # the channel's kind
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

    page.select_option("#priority", "7")
    wait_for(lambda: desk.ok("GET", f"/conversations/{conversation_id}")["priority"] == 7, what="priority 7")
    page.fill("#snooze-until", "2031-05-04T09:30")
    page.click("text=Snooze")
    page.locator("#conversation-status[data-status=snoozed]").wait_for()
    snoozed = desk.ok("GET", f"/conversations/{conversation_id}")
    assert snoozed["status"] == "snoozed" and snoozed["snoozed_until"].startswith("2031-05-0")
    assert navigations == [], navigations
    assert errors == []  # no script error, no refused request along the way


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
    assert "canviar la talla" in arrived.inner_text()
    number = arrived.locator(".conv-number").inner_text()
    theirs.locator(".toast", has_text=f"Conversation {number} was assigned to you").wait_for()
    # Ana (no team) may not see a conversation of Jan's: her page says so instead of going stale.
    mine.locator("[role=alert]", has_text="You can no longer see this conversation").wait_for()
    arrived.locator("a").click()
    theirs.locator(".msg[data-direction=in]", has_text="canviar la talla").wait_for()
    assert navigations == [], navigations


def test_failed_reply_shows_reason_and_retry_delivers(desk: Desk, page: Any, shop: Shop,
                                                      channel: tuple[int, str]) -> None:
    from tests.fakes.shop import Answer

    fia = desk.agent("Fia Roig")
    desk.only_online(fia["id"])
    sign_in(page, fia["email"])
    desk.inbound(channel, "Voldria tornar unes sabates", customer="quim-3", name="Quim Prat")
    page.locator(".conv-item a", has_text="Quim Prat").click()
    page.locator(".msg[data-direction=in]").wait_for()

    shop.answers.append(Answer(status=400))  # the shop refuses this one: a permanent failure
    page.fill("#composer-text", "Cap problema, t'envio l'etiqueta")
    page.click("#composer button[type=submit]")
    reply = page.locator(".msg[data-direction=out]", has_text="l'etiqueta")
    reply.locator(".tick[data-status=failed]").wait_for()
    assert "Not delivered:" in reply.locator(".failure").inner_text()
    reply.locator("button.retry").click()  # the shop answers 200 now
    reply.locator(".tick[data-status=sent], .tick[data-status=delivered]").wait_for()
    assert reply.locator(".failure").count() == 0
    assert [b["text"] for b in shop.bodies() if b["to"]["id"] == "quim-3"] == ["Cap problema, t'envio l'etiqueta"] * 2


def test_keyboard_alone(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    """j/k, Enter, r, n, a, e, ?, Esc and Ctrl+Enter: a conversation handled without the mouse."""
    gil = desk.agent("Gil Mas")
    errors = watch_errors(page)
    written = presence_writes(page)
    sign_in(page, gil["email"])
    written()  # the page's "online" landing after the line below would let the router give Gil one
    desk.only_online()  # nobody online: the conversations wait, unassigned, in the shared queue
    for customer in ("Uri", "Vera"):
        desk.inbound(channel, f"Hola, soc en {customer}", customer=customer.lower(), name=customer)
    page.goto("/#/unassigned")
    page.locator(".conv-item", has_text="Vera").wait_for()
    page.locator(".conv-item", has_text="Uri").wait_for()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    focused = page.evaluate("() => document.activeElement.closest('.conv-item').dataset.id")
    first = page.locator(".conv-item").first.get_attribute("data-id")
    assert focused == first
    page.keyboard.press("Enter")
    page.locator("#messages .msg").first.wait_for()
    page.keyboard.press("a")  # assign to me
    page.locator("#assign-me").wait_for(state="detached")  # shown only while it is someone else's
    assert page.locator("#assignee").input_value() == str(gil["id"])
    assert desk.ok("GET", f"/conversations/{first}")["assignee_id"] == gil["id"]
    page.keyboard.press("r")
    assert page.evaluate("() => document.activeElement.id") == "composer-text"
    page.keyboard.type("Ja ho miro!")
    page.keyboard.press("Control+Enter")
    page.locator(".msg[data-direction=out]", has_text="Ja ho miro!").wait_for()
    page.keyboard.press("Escape")  # leave the composer
    page.keyboard.press("n")
    assert page.locator("#composer").get_attribute("class").split().count("is-note") == 1
    page.keyboard.press("Escape")
    page.keyboard.press("e")  # resolve
    page.locator("#conversation-status[data-status=resolved]").wait_for()
    page.keyboard.press("?")
    page.locator("#help[role=dialog], #help [role=dialog]").wait_for()
    page.keyboard.press("Escape")
    page.locator("#help").wait_for(state="detached")
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "search-box"
    assert desk.ok("GET", f"/conversations/{first}")["status"] == "resolved"
    assert errors == []


def test_colleague_sees_typing_and_note_live(desk: Desk, new_page: Any, channel: tuple[int, str]) -> None:
    team = desk.ok("POST", "/teams", json={"name": f"Equip {desk.kind} {new_page.__hash__()}"})
    ana = desk.agent("Ana Vidal", teams=[team["id"]])
    jan = desk.agent("Jan Nowicki", teams=[team["id"]])
    desk.only_online(ana["id"])
    desk.inbound(channel, "On puc recollir la comanda?", customer="lia-9", name="Lia Costa")
    mine, theirs = new_page(), new_page()
    sign_in(mine, ana["email"])
    mine.locator(".conv-item a", has_text="Lia Costa").click()
    mine.locator(".msg[data-direction=in]").wait_for()
    conversation_id = int(re.search(r"/conversations/(\d+)", mine.url).group(1))
    desk.ok("PATCH", f"/conversations/{conversation_id}", json={"team_id": team["id"]})
    sign_in(theirs, jan["email"])
    theirs.goto(f"/#/conversations/{conversation_id}")
    theirs.locator(".msg[data-direction=in]").wait_for()

    mine.click("text=Private note")
    mine.locator("#composer-text").press_sequentially("La botiga obre a les 10", delay=20)
    theirs.locator("#typing", has_text="Ana Vidal is typing").wait_for()
    mine.press("#composer-text", "Control+Enter")
    theirs.locator(".msg.is-private", has_text="La botiga obre a les 10").wait_for()
    theirs.locator("#typing:empty").wait_for(state="attached")
    assert theirs.locator(".msg").count() == 2


def test_unread_counts_canned_files_contact(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    """The inbox API's parts through the page: unread badges and counts, read on open, a canned
    response by its /shortcut with placeholders filled, a note with a file, and the contact panel
    with the customer's other conversation."""
    tag = f"{desk.kind}{id(page) % 10000}"
    desk.ok("POST", "/canned-responses", json={
        "shortcut": f"enviament{tag}", "title": "Enviament en camí",
        "text": "Hola {{contact.first_name}}, la comanda de la conversa #{{conversation.number}} ja és en camí."})
    rut = desk.agent("Rut Camps")
    desk.only_online(rut["id"])
    sign_in(page, rut["email"])
    desk.inbound(channel, f"On és el paquet {tag}?", customer=f"nina-{tag}", name="Nina Riera",
                 thread="first")
    desk.inbound(channel, "I una altra pregunta sobre la factura", customer=f"nina-{tag}", name="Nina Riera",
                 thread="second")
    items = page.locator(".conv-item", has_text="Nina Riera")
    items.nth(1).wait_for()
    first = page.locator(".conv-item.is-unread", has_text=f"paquet {tag}")
    first.locator(".unread.badge", has_text="1").wait_for()
    page.locator(".nav-link[data-nav='#/mine'] .badge", has_text="2").wait_for()

    first.locator("a").click()
    page.locator(".msg[data-direction=in]").wait_for()
    number = page.locator("#conversation-title").inner_text().split(" ")[0]
    opened = re.search(r"/conversations/(\d+)", page.url).group(1)
    # The contact panel: the other conversation of the same customer.
    page.locator(".contact-panel .others a").wait_for()
    assert page.locator(".contact-panel .others a").count() == 1

    page.fill("#composer-text", f"/enviament{tag}"[:8])
    page.locator("#canned-list [role=option]", has_text=f"/enviament{tag}").wait_for()
    page.press("#composer-text", "Enter")
    assert page.input_value("#composer-text") == f"Hola Nina, la comanda de la conversa {number} ja és en camí."

    page.keyboard.press("Escape")
    page.click("text=Private note")
    page.fill("#composer-text", "Albarà adjunt")
    page.set_input_files("#composer-files", files=[{"name": "albara.txt", "mimeType": "text/plain",
                                                     "buffer": b"albara 1042"}])
    page.press("#composer-text", "Control+Enter")
    page.locator(".msg.is-private .attachments a", has_text="albara.txt").wait_for()

    # A message arriving while the conversation is open is read too, even when the agent moves on at once.
    desk.inbound(channel, "Perfecte, gràcies", customer=f"nina-{tag}", name="Nina Riera", thread="first")
    page.locator(".msg[data-direction=in]", has_text="Perfecte, gràcies").wait_for()
    page.goto("/#/mine")
    page.locator(f".conv-item[data-id='{opened}']", has_text="Perfecte, gràcies").wait_for()  # the preview: the last
    assert "is-unread" not in page.get_attribute(f".conv-item[data-id='{opened}']", "class")  # read on open
    page.locator(".nav-link[data-nav='#/mine'] .badge", has_text="2").wait_for()


def test_a_late_answer_never_lands_over_a_newer_one(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    """The list and the header's counts are fetched again at stream events, and those fetches
    overlap. One answered late (a slow network, a loaded server) with what was true when it was
    asked must not replace what a later fetch already showed."""
    tag = f"{desk.kind}{id(page) % 10000}"
    eva = desk.agent("Eva Soler")
    desk.only_online(eva["id"])
    sign_in(page, eva["email"])
    page.locator(".inbox-list").wait_for()  # the list's first load is answered
    held: dict[str, Any] = {}
    fetched: list[float] = []  # when each fetch let through was asked

    def hold_first(route: Any) -> None:
        path = route.request.url.split("/api/v1", 1)[-1]
        which = "counts" if path.startswith("/conversations/counts") else "list"
        if which not in held and "second" not in held:
            held[which] = route
        else:
            fetched.append(time.monotonic())
            route.continue_()

    page.route(re.compile(r"/api/v1/conversations(\?|/counts$)"), hold_first)
    desk.inbound(channel, f"Primer missatge {tag}", customer=f"eva-{tag}", name="Clara Bosch", thread=f"first-{tag}")
    wait_in_page(page, lambda: "counts" in held and "list" in held, "the page to ask for the list and the counts")
    # What the server answers while only the first conversation exists, kept to arrive late.
    late = {which: route.fetch() for which, route in held.items()}
    assert late["counts"].json()["mine"] < 2 and len(late["list"].json()["items"]) < 2
    held["second"] = True  # from here every fetch goes through

    desk.inbound(channel, f"Segon missatge {tag}", customer=f"eva-{tag}", name="Clara Bosch", thread=f"second-{tag}")
    badge = page.locator(".nav-link[data-nav='#/mine'] .badge")
    badge.filter(has_text="2").wait_for()
    page.locator(".conv-item", has_text="Clara Bosch").nth(1).wait_for()
    wait_quiet(page, fetched, "the page's fetches of the list and the counts to settle")
    for which in ("counts", "list"):
        with page.expect_response(lambda answer: "/api/v1/conversations" in answer.url):
            held[which].fulfill(response=late[which])
    page.wait_for_timeout(300)  # a wrong outcome (the older answer shown) has time to show
    assert badge.inner_text() == "2"
    assert page.locator(".conv-item", has_text="Clara Bosch").count() == 2


def test_an_open_conversation_never_goes_back_to_an_older_state(desk: Desk, page: Any,
                                                                channel: tuple[int, str]) -> None:
    """The open conversation is fetched again at its stream events. A fetch answered late, with the
    conversation as it was (open), must not undo what a later fetch showed (resolved elsewhere)."""
    tag = f"{desk.kind}{id(page) % 10000}"
    iu = desk.agent("Iu Mas")
    desk.only_online(iu["id"])
    sign_in(page, iu["email"])
    desk.inbound(channel, f"Bon dia {tag}", customer=f"iu-{tag}", name="Laia Font", thread=f"late-{tag}")
    page.locator(".conv-item", has_text="Laia Font").locator("a").click()
    page.locator(".msg[data-direction=in]", has_text=f"Bon dia {tag}").wait_for()
    number = re.search(r"/conversations/(\d+)", page.url).group(1)
    held: list[Any] = []
    passing: list[bool] = []  # once set, every fetch goes through (unrouting would release the held one)

    fetched: list[float] = []  # when each fetch let through was asked

    def hold_first(route: Any) -> None:
        if route.request.method == "GET" and not held and not passing:
            held.append(route)
        else:
            fetched.append(time.monotonic())
            route.continue_()

    page.route(f"**/api/v1/conversations/{number}", hold_first)
    desk.inbound(channel, f"Encara hi sou? {tag}", customer=f"iu-{tag}", name="Laia Font", thread=f"late-{tag}")
    wait_in_page(page, lambda: held, "the page to fetch the conversation again after its new message")
    late = held[0].fetch()  # the conversation as it is now: open, kept to arrive late
    assert late.json()["status"] == "open"
    passing.append(True)

    desk.ok("POST", f"/conversations/{number}/resolve")
    page.locator("#conversation-status[data-status=resolved]").wait_for()
    wait_quiet(page, fetched, "the page's fetches of the conversation to settle")
    with page.expect_response(lambda answer: answer.url.endswith(f"/api/v1/conversations/{number}")):
        held[0].fulfill(response=late)
    page.wait_for_timeout(300)  # a wrong outcome (the older state shown) has time to show
    assert page.get_attribute("#conversation-status", "data-status") == "resolved"
    assert page.locator(".msg[data-direction=in]", has_text=f"Encara hi sou? {tag}").count() == 1


def test_counts_the_server_could_not_give_are_asked_again(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    """The header's counts failing (the server answering 500) after a new conversation: the page
    asks again by itself, with no further event to prompt it."""
    tag = f"{desk.kind}{id(page) % 10000}"
    pau = desk.agent("Pau Ferrer")
    desk.only_online(pau["id"])
    sign_in(page, pau["email"])
    page.locator(".inbox-list").wait_for()
    refused: list[float] = []  # when each counts fetch was refused

    def refuse(route: Any) -> None:
        refused.append(time.monotonic())
        route.fulfill(status=500, body="database is locked")

    page.route("**/api/v1/conversations/counts", refuse)
    desk.inbound(channel, f"Hi ha algú? {tag}", customer=f"pau-{tag}", name="Jana Roig")
    page.locator(".conv-item", has_text="Jana Roig").wait_for()
    # Less quiet than the page's 2 s between tries: the events' fetches are over, not the retries.
    wait_quiet(page, refused, "the page's counts after the new conversation (refused) to settle")
    page.unroute("**/api/v1/conversations/counts")
    page.locator(".nav-link[data-nav='#/mine'] .badge", has_text="1").wait_for()


def test_search_finds_and_opens(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    tag = f"{desk.kind}{id(page) % 10000}"
    sol = desk.agent("Sol Pujol")
    desk.only_online(sol["id"])
    desk.inbound(channel, f"Tinc un dubte sobre el paquet {tag}", customer=f"ot-{tag}", name="Oriol Tarrés")
    sign_in(page, sol["email"])
    page.locator(".conv-item", has_text="Oriol Tarrés").wait_for()
    page.keyboard.press("/")
    page.keyboard.type(f"paquet {tag}")
    page.keyboard.press("Enter")
    result = page.locator("#search-results .conv-item[data-kind=message]", has_text="Oriol Tarrés")
    result.wait_for()
    assert f"paquet {tag}" in result.locator(".snippet").inner_text()
    page.fill("#search-box", "Tarrés")
    page.press("#search-box", "Enter")
    page.locator("#search-results .conv-item[data-kind=contact]", has_text="Oriol Tarrés").locator("a").click()
    page.locator(".msg[data-direction=in]", has_text=f"paquet {tag}").wait_for()


def test_language_follows_the_agent(desk: Desk, new_page: Any) -> None:
    """The language chosen is the agent's (PATCH /me), not the browser's: a fresh browser shows it."""
    pia = desk.agent("Pia Nowak", online=False)
    first = new_page()
    sign_in(first, pia["email"])
    first.select_option("#language", "pl")
    first.locator("a.nav-link[data-nav='#/mine']", has_text="Moje").wait_for()
    wait_for(lambda: desk.ok("GET", f"/agents/{pia['id']}").get("locale") == "pl", what="locale saved")
    other = new_page()
    sign_in(other, pia["email"])
    other.locator("a.nav-link[data-nav='#/mine']", has_text="Moje").wait_for()


def test_sla_due_time_turns_overdue_live(desk: Desk, page: Any, channel: tuple[int, str]) -> None:
    """A waiting customer's answer is due (the list says when); once the sweep finds it breached the
    list says so without a reload; the agent's reply clears it."""
    rosa = desk.agent("Rosa Pla")
    desk.only_online(rosa["id"])
    errors = watch_errors(page)
    sign_in(page, rosa["email"])
    navigations = no_reload(page)
    desk.ok("PUT", "/settings/sla", json={"near": 0.5, "targets": {"messaging": {"first": 4}}})
    try:
        desk.inbound(channel, "Quan arriba el paquet?", customer="nil-1", name="Nil Soler")
        item = page.locator(".conv-item", has_text="Nil Soler")
        item.locator(".sla").wait_for()
        item.locator(".sla.breached", has_text="answer overdue").wait_for()  # the sweep's event, live
    finally:
        desk.ok("PUT", "/settings/sla", json={})
    item.locator("a").click()
    page.fill("#composer-text", "Demà!")
    page.press("#composer-text", "Control+Enter")
    page.locator(".msg[data-direction=out]", has_text="Demà!").wait_for()
    page.goto("/#/mine")
    page.locator(".conv-item", has_text="Nil Soler").wait_for()
    assert page.locator(".conv-item", has_text="Nil Soler").locator(".sla").count() == 0
    assert navigations == [] and errors == []
