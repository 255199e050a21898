"""The README's screenshots of the inbox, made by the real page in Chromium on the embedded default
with a small shop's day: ``.venv/bin/python -m tests.web.browser.screenshots docs/screenshots``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.fakes.shop import Shop
from tests.support import wait_for
from tests.web.browser.conftest import CHROMIUM, FLAGS
from tests.web.browser.desks import embedded, sign_in

CUSTOMERS = [
    ("marta", "Marta Vila", "Hola! On és la meva comanda 1042? Havia d'arribar ahir."),
    ("zofia", "Zofia Żółkiewska", "Dzień dobry, czy mogę wymienić buty na większy rozmiar?"),
    ("joao", "João Almeida", "Boa tarde, o código de desconto não funciona no checkout."),
    ("lucia", "Lucía Gómez", "¿Hacéis envíos a Canarias? ¿Cuánto cuesta?"),
    ("tom", "Tom Baker", "Hi, I was charged twice for order 1107."),
]


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shop = Shop()
    with tempfile.TemporaryDirectory() as directory, embedded(Path(directory)) as desk, sync_playwright() as pw:
        channel = desk.api_channel(shop.url)
        ana = desk.agent("Ana Puig", languages=["ca", "es", "en"])
        desk.only_online(ana["id"])
        for customer, name, text in CUSTOMERS:
            desk.inbound(channel, text, customer=customer, name=name)
        wait_for(lambda: all(c["assignee_id"] for c in desk.ok("GET", "/conversations")["items"]), timeout=20)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_context(base_url=desk.url, viewport={"width": 1280, "height": 760},
                                   locale="en-GB").new_page()
        page.goto("/")
        page.locator("#signin-form").wait_for()
        page.screenshot(path=out / "sign-in.png")
        sign_in(page, ana["email"])
        page.locator(".conv-item", has_text="Tom Baker").wait_for()
        page.locator(".conv-item a", has_text="Marta Vila").click()
        page.locator(".msg").first.wait_for()
        page.fill("#composer-text", "Hola Marta! Ha sortit avui del magatzem; demà al matí la tens a casa.")
        page.press("#composer-text", "Control+Enter")
        page.locator(".tick[data-status=sent], .tick[data-status=delivered]").wait_for()
        page.keyboard.press("Escape")
        page.keyboard.press("n")
        page.fill("#composer-text", "Segon retard aquest mes: oferir-li l'enviament gratuït la propera vegada.")
        page.press("#composer-text", "Control+Enter")
        page.locator(".msg.is-private").wait_for()
        desk.inbound(channel, "Moltes gràcies! 😊", customer="marta", name="Marta Vila")
        page.locator(".msg", has_text="Moltes gràcies").wait_for()
        page.screenshot(path=out / "inbox-conversation.png")
        page.goto("/#/mine")
        page.locator(".conv-item", has_text="Tom Baker").wait_for()
        page.screenshot(path=out / "inbox-list.png")
        browser.close()
    shop.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
