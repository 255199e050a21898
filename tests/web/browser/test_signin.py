"""Signing in to the inbox in real Chromium, on both deployments: the form at ``/`` (inputs
``email`` and ``password``), a wrong pair, the rate limit's message, staying signed in across a
reload, signing out; the page's security headers; and /docs served without any other host."""

from __future__ import annotations

import re
from typing import Any

from tests.support import wait_for
from tests.web.browser.desks import PASSWORD, Desk, wait_in_page, watch_errors

CSP_PARTS = ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
             "base-uri 'none'", "connect-src 'self'"]


def test_sign_in_wrong_pair_then_right_then_out(desk: Desk, page: Any) -> None:
    ana = desk.agent("Ana Puig")
    errors = watch_errors(page)
    page.goto("/")
    form = page.locator("#signin-form")
    assert form.locator("input[name=email]").is_visible() and form.locator("input[name=password]").is_visible()

    page.fill("input[name=email]", ana["email"])
    page.fill("input[name=password]", "not the password")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('Wrong email or password')")
    assert not page.locator("#shell").is_visible()

    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#me-name")
    assert page.inner_text("#me-name") == "Ana Puig"
    assert page.locator("#presence").get_attribute("aria-pressed") == "true"
    assert not page.locator("#signin").is_visible()

    page.reload()  # the session cookie keeps the agent signed in
    page.wait_for_selector("#me-name")
    url_before = page.url
    page.click("text=Sign out")
    page.wait_for_selector("#signin-form input[name=email]", state="visible")
    page.reload()
    page.wait_for_selector("#signin-form input[name=email]", state="visible")
    assert not page.locator("#shell").is_visible()
    assert url_before.startswith(desk.url)
    assert errors == []


def signed_in_before_the_start_up_check(desk: Desk, page: Any, name: str) -> Any:
    """A new agent signed in through the form while the page's start-up ``GET /session`` is held
    unanswered (a slow network, a loaded server): that held request, for the test to answer."""
    agent = desk.agent(name)
    held: list[Any] = []

    def hold_first_check(route: Any) -> None:
        if route.request.method == "GET" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/session", hold_first_check)
    page.goto("/")
    page.fill("input[name=email]", agent["email"])
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#me-name")
    assert len(held) == 1
    return held[0]


def test_a_quick_sign_in_is_not_undone_by_the_page_still_starting(desk: Desk, page: Any) -> None:
    """The page asks ``GET /session`` as it starts; an agent who signs in before that answer comes
    stays signed in when the answer (401: not yet) arrives."""
    check = signed_in_before_the_start_up_check(desk, page, "Rita Soler")
    # The start-up check answers now what it would have answered then: not signed in.
    check.fulfill(status=401, content_type="application/json", body='{"detail": "not signed in"}')
    page.wait_for_timeout(500)  # give a wrong outcome (the sign-in form back) time to show
    assert page.locator("#me-name").is_visible() and not page.locator("#signin").is_visible()


def test_a_quick_sign_in_is_made_once_when_the_start_up_check_then_finds_the_session(desk: Desk, page: Any) -> None:
    """The start-up ``GET /session`` answering after the form signed in, with that new session: the
    page stays as the form left it; it does not sign in a second time (a second stream, a second
    read of the agent)."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url.split("/api/v1", 1)[-1])
            if "/api/v1/" in request.url and request.method == "GET" else None)
    check = signed_in_before_the_start_up_check(desk, page, "Rita Sala")
    session = page.evaluate("fetch('/api/v1/session').then((r) => r.text())")
    assert '"csrf_token"' in session
    check.fulfill(status=200, content_type="application/json", body=session)
    page.wait_for_timeout(1000)  # give a second sign-in time to happen
    assert asked.count("/me") == 1, asked
    assert sum(path.startswith("/events") for path in asked) == 1, asked
    assert page.locator("#me-name").is_visible() and not page.locator("#signin").is_visible()


def test_rate_limit_message(desk: Desk, page: Any) -> None:
    bo = desk.agent("Bo Nowak", online=False)
    page.goto("/")
    page.fill("input[name=email]", bo["email"])
    for _ in range(8):
        page.fill("input[name=password]", "wrong wrong wrong")
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#signin-error:not(:empty)")
        message = page.inner_text("#signin-error")
        if "Too many attempts" in message:
            break
        page.locator("#signin-error").evaluate("el => el.textContent = ''")
    assert re.search(r"Too many attempts\. Try again in \d+ min\.", message), message
    # Even the right password is refused while the limit holds, with the same message.
    page.fill("input[name=password]", PASSWORD)
    page.locator("#signin-error").evaluate("el => el.textContent = ''")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:not(:empty)")
    assert "Too many attempts" in page.inner_text("#signin-error")


def test_page_headers(desk: Desk) -> None:
    for path in ("/", "/ui/app.js", "/ui/i18n/pl.json", "/invite/some-token"):
        answer = desk.http.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert all(part in csp for part in CSP_PARTS), (path, csp)
        assert answer.headers["x-content-type-options"] == "nosniff"
    index = desk.http.get("/")
    assert index.headers["cache-control"] == "no-cache"
    assert 'name="email"' in index.text and 'name="password"' in index.text
    assert "<script>" not in index.text  # no inline script: the CSP forbids it
    assert desk.http.get("/ui/../pages.py").status_code == 404


def test_docs_served_locally(desk: Desk, page: Any) -> None:
    outside: list[str] = []
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: (outside.append(route.request.url),
                                                                        route.abort()))
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "omnidesk" in page.inner_text(".swagger-ui .info .title")
    assert outside == []


def test_invite_link_sets_password_and_signs_in(desk: Desk, page: Any) -> None:
    cai = desk.agent("Cai Ferrer", online=False)
    link = desk.ok("POST", f"/agents/{cai['id']}/invite")["url"]
    path = "/" + link.split("/", 3)[3]
    assert path.startswith("/invite/")
    page.goto(path)
    page.locator("text=Welcome, Cai Ferrer").wait_for()
    page.fill("#invite-password", "a brand new secret")
    page.fill("#invite-again", "a different secret")
    page.click("#public button[type=submit]")
    page.locator("#public [role=alert]", has_text="The two passwords differ").wait_for()
    page.fill("#invite-again", "a brand new secret")
    page.click("#public button[type=submit]")
    page.wait_for_selector("#me-name")
    assert page.inner_text("#me-name") == "Cai Ferrer"
    assert page.url.endswith("/#/mine")

    page.goto(path)  # a link works once
    page.locator("#public [role=alert]", has_text="used or has expired").wait_for()
    page.goto("/")
    page.click("text=Sign out")
    page.fill("input[name=email]", cai["email"])
    page.fill("input[name=password]", "a brand new secret")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#me-name")


def test_language_menu(desk: Desk, page: Any) -> None:
    from tests.web.browser.desks import sign_in

    dora = desk.agent("Dora Nowak", online=False)
    sign_in(page, dora["email"])
    assert page.inner_text("a.nav-link[data-nav='#/mine']").startswith("Mine")
    page.select_option("#language", "pl")
    page.locator("a.nav-link[data-nav='#/mine']", has_text="Moje").wait_for()
    assert page.get_attribute("html", "lang") == "pl"
    assert page.inner_text("button >> text=Wyloguj się")
    page.reload()
    page.locator("a.nav-link[data-nav='#/mine']", has_text="Moje").wait_for()
    page.select_option("#language", "ca")
    page.locator("a.nav-link[data-nav='#/mine']", has_text="Meves").wait_for()


def test_presence_toggle(desk: Desk, page: Any) -> None:
    from tests.web.browser.desks import sign_in

    eli = desk.agent("Eli Sala", online=False)
    sign_in(page, eli["email"])  # opening the inbox: online
    page.locator("#presence[data-status=online]").wait_for()
    wait_for(lambda: desk.ok("GET", f"/agents/{eli['id']}")["presence"] == "online", timeout=20,
             what="the page's presence on the server")
    page.click("#presence")
    page.locator("#presence[data-status=away]").wait_for()
    assert page.get_attribute("#presence", "aria-pressed") == "false"
    assert desk.ok("GET", f"/agents/{eli['id']}")["presence"] == "away"
    desk.ok("PUT", f"/agents/{eli['id']}/presence", json={"status": "online"})  # from elsewhere: the page follows
    page.locator("#presence[data-status=online]").wait_for()


def test_a_heartbeat_answered_late_does_not_undo_away(desk: Desk, page: Any) -> None:
    """The page's heartbeat (it carries the status) sent just before the agent chooses away and
    answered late (a slow server): the choice stands, on the page and on the server."""
    from tests.web.browser.desks import sign_in

    lea = desk.agent("Lea Puig", online=False)
    held: list[Any] = []

    def hold_first_beat(route: Any) -> None:
        if not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/api/v1/me/heartbeat", hold_first_beat)
    sign_in(page, lea["email"])  # opening the inbox: online, and a heartbeat saying so
    wait_in_page(page, lambda: held, "the page's first heartbeat")
    page.click("#presence")
    page.wait_for_timeout(300)  # the choice on its way
    with page.expect_response(lambda answer: answer.url.endswith("/api/v1/me/heartbeat")):
        held[0].continue_()
    page.locator("#presence[data-status=away]").wait_for()
    page.wait_for_timeout(300)  # any write still on its way lands
    assert desk.ok("GET", f"/agents/{lea['id']}")["presence"] == "away"
    assert page.get_attribute("#presence", "data-status") == "away"


def test_disabled_agent_is_signed_out_of_the_open_page(desk: Desk, page: Any) -> None:
    """An admin disables an agent: the open inbox's stream ends and the page goes back to its
    sign-in form, saying why, without anything the agent does."""
    from tests.web.browser.desks import sign_in

    ivo = desk.agent("Ivo Serra", online=False)
    sign_in(page, ivo["email"])
    desk.ok("PATCH", f"/agents/{ivo['id']}", json={"active": False})
    page.locator("#signin-form input[name=email]").wait_for(timeout=45_000)  # the stream's next ping
    page.locator(".toast", has_text="Your session has ended").wait_for()
    assert not page.locator("#shell").is_visible()
