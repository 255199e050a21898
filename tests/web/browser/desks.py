"""omnidesk as the browser tests meet it, on either deployment: ``Desk`` gives both the same
calls (the admin API, agents with passwords, the API channel's webhook) whatever runs underneath:
the embedded default in this process (SQLite, in-process broker and workers, as ``omnidesk up``)
or the deployment's separate web, worker and scheduler processes on PostgreSQL and Redis."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests import support
from tests.deployment import Deployment

PASSWORD = "correct horse battery"


class Desk:
    def __init__(self, kind: str, url: str, admin: httpx.Client) -> None:
        self.kind = kind
        self.url = url
        self.http = admin  # carries the admin token

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, "/api/v1" + path, headers=headers, **kw)

    def ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        answer = self.api(method, path, token, **kw)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def agent(self, name: str, *, online: bool = True, **kw: Any) -> dict[str, Any]:
        """A new agent who can sign in with ``PASSWORD`` (their ``email`` in the answer)."""
        email = f"{name.lower().replace(' ', '.')}.{secrets.token_hex(3)}@shop.test"
        agent = self.ok("POST", "/agents", json={"name": name, "email": email, "capacity": 10,
                                                 "password": PASSWORD, **kw})
        if online:
            self.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
        return agent

    def only_online(self, *agent_ids: int) -> None:
        """Every other agent offline, so the router gives new conversations to these."""
        for agent in self.ok("GET", "/agents")["items"]:
            status = "online" if agent["id"] in agent_ids else "offline"
            if agent["presence"] != status:
                self.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": status})

    def api_channel(self, callback_url: str) -> tuple[int, str]:
        secret = secrets.token_urlsafe(24)
        channel = self.ok("POST", "/channels", json={
            "kind": "api", "name": "Shop backend", "config": {"secret": secret, "callback_url": callback_url}})
        return channel["id"], secret

    def inbound(self, channel: tuple[int, str], text: str, *, customer: str = "cust-1", name: str = "Marta",
                **extra: Any) -> None:
        """A customer's message through the API channel's webhook, signed."""
        from connectors.api import sign

        channel_id, secret = channel
        body = json.dumps({"message_id": secrets.token_hex(8), "from": {"id": customer, "name": name},
                           "text": text, **extra}).encode()
        answer = self.http.post(f"/webhooks/{channel_id}", content=body, headers={
            "X-Omnidesk-Signature": sign(secret, body), "Content-Type": "application/json"})
        assert answer.status_code == 202, answer.text


@contextmanager
def embedded(directory: Path) -> Iterator[Desk]:
    """The embedded default: SQLite, in-process broker, workers and scheduler, in this process."""
    with support.running_omnidesk("sqlite", f"sqlite:///{directory}/omnidesk.db", directory) as running:
        running.http.headers["Authorization"] = f"Bearer {running.admin_token}"
        yield Desk("embedded", running.url, running.http)


@contextmanager
def deployed(pg_template: str, directory: Path) -> Iterator[Desk]:
    """The deployment: web, worker and scheduler processes on PostgreSQL and Redis."""
    name = f"omnidesk_browser_{secrets.token_hex(4)}"
    url = support.create_database(name, template=pg_template)
    try:
        with Deployment(url, directory) as desk:
            yield Desk("deployment", f"http://127.0.0.1:{desk.port}", desk.api)
    finally:
        support.drop_database(name)


def sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    """Sign in through the page's own form, and wait for the inbox. When the inbox does not come,
    the failure says what the page showed and how its requests went."""
    started = time.monotonic()
    requests: list[str] = []

    def seen(what: str) -> Callable[[Any], None]:
        return lambda request: requests.append(
            f"{time.monotonic() - started:.2f}s {what} {request.method} {request.url.split('/', 3)[-1]}"
            + (f" ({request.failure})" if what == "failed" else ""))

    handlers = {"request": seen("sent"), "requestfinished": seen("answered"), "requestfailed": seen("failed")}
    for event, handler in handlers.items():
        page.on(event, handler)
    try:
        page.goto("/")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#me-name")
    except Exception as exc:
        shown = page.evaluate("""() => ({
            signin: !document.querySelector('#signin').hidden,
            shell: !document.querySelector('#shell').hidden,
            error: document.querySelector('#signin-error').textContent,
            toasts: [...document.querySelectorAll('.toast')].map((t) => t.textContent)})""")
        calls = [line for line in requests if " ui/" not in line or " failed " in line]  # not each script
        raise AssertionError(f"not signed in after {time.monotonic() - started:.1f} s: the page shows {shown}; "
                             "its requests but the page's own files:\n" + "\n".join(calls)) from exc
    finally:
        for event, handler in handlers.items():
            page.remove_listener(event, handler)


def wait_in_page(page: Any, done: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    """Wait until ``done()`` holds, calling into the page meanwhile: a route's handler runs only
    while playwright is called, so ``time.sleep`` would wait for nothing."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        page.wait_for_timeout(50)


def presence_writes(page: Any) -> Callable[[], None]:
    """Follow the page's own presence writes from now (the toggle's PUT, and the heartbeat, which
    carries the status: a page signing in writes "online"); returns a wait until a heartbeat has
    been answered and no write has been in flight for half a second. A test that sets an agent's
    presence from outside while their page is open waits first: a write of the page's landing
    after it would undo it."""
    inflight: set[Any] = set()
    beats: list[float] = []  # when each heartbeat was answered
    last = [0.0]  # when the last write was answered

    def presence(request: Any) -> bool:
        path = request.url.split("?")[0]
        return path.endswith("/me/heartbeat") or path.endswith("/presence")

    def sent(request: Any) -> None:
        if presence(request):
            inflight.add(request)

    def over(request: Any) -> None:
        if presence(request):
            inflight.discard(request)
            last[0] = time.monotonic()
            if request.url.split("?")[0].endswith("/me/heartbeat"):
                beats.append(last[0])

    page.on("request", sent)
    page.on("requestfinished", over)
    page.on("requestfailed", over)

    def wait() -> None:
        wait_in_page(page, lambda: beats and not inflight and time.monotonic() - last[0] > 0.5,
                     "the page's own presence writes")

    return wait


def wait_quiet(page: Any, asked: list[float], what: str, quiet: float = 1.0) -> None:
    """Wait until the page has asked again (``asked``: the ``time.monotonic()`` of each request a
    route saw) and then nothing for ``quiet`` seconds: the stream's events have all been handled, so
    nothing after this point would put right a wrong state by chance."""
    wait_in_page(page, lambda: asked and time.monotonic() - asked[-1] > quiet, what)


def admin(desk: Desk, page: Any, name: str = "Olga Admin") -> dict[str, Any]:
    """A new admin, signed in on ``page``."""
    agent = desk.agent(name, role="admin", online=False)
    sign_in(page, agent["email"])
    return agent


def watch_errors(page: Any) -> list[str]:
    """Script errors of the page (uncaught exceptions, errors logged; not answers such as the 401
    of ``GET /session`` before signing in), for a test to assert none happened."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)

    def answered(response: Any) -> None:  # a 401 of /session is how the page learns who is signed in
        if response.status >= 400 and not (response.status == 401 and response.url.endswith("/api/v1/session")):
            errors.append(f"{response.request.method} {response.url}: {response.status}")

    page.on("response", answered)
    return errors
