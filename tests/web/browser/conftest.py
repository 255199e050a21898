"""Browser tests: real Chromium (Debian's /usr/bin/chromium) driven by playwright, against both
deployments. One browser and one omnidesk per module and deployment; each test gets fresh browser
contexts (``page``, ``new_page``) and its own agents, so tests do not see each other's state.

Never ``playwright install``: the browser is the system's (scripts/test installs it when missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.shop import Shop
from tests.web.browser.desks import Desk, deployed, embedded

CHROMIUM = os.environ.get("OMNIDESK_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 20_000  # the longest a condition is waited for (the machines are shared and busy)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        from tests.support import unavailable

        unavailable("Chromium", f"{CHROMIUM} is missing (scripts/test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", params=["embedded", "deployment"])
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """omnidesk on the embedded default, then as deployed (PostgreSQL, Redis, separate processes)."""
    directory = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        with embedded(directory) as running:
            yield running
    else:
        from tests import support

        support.check_redis()
        with deployed(request.getfixturevalue("pg_template"), directory) as running:
            yield running


@pytest.fixture
def new_page(browser: Any, desk: Desk) -> Iterator[Callable[[], Any]]:
    """Pages in fresh browser contexts (cookies of their own: one agent each)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(base_url=desk.url, locale="en-GB", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Any]) -> Any:
    return new_page()


@pytest.fixture(scope="module")
def shop(desk: Desk) -> Iterator[Shop]:
    """The shop's endpoint for the API channel's replies (one per module and deployment)."""
    server = Shop()
    yield server
    server.close()
