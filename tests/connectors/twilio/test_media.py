"""Files on Twilio replies, end to end on both deployments of this process: the reply's file goes
to the stand-in as a signed, expiring MediaUrl under OMNIDESK_PUBLIC_URL, which the stand-in fetches
as Twilio does (no credentials); a link forged, altered or expired is refused (403) and a file that
is no reply's is not served by link (404); what MMS and WhatsApp cannot carry is refused with 422
and its reason before anything is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from store import media
from store.sql import attachments
from tests import support
from tests.connectors.twilio import flows
from tests.fakes.twilio import FakeTwilio

US_CUSTOMER = "+12025550143"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00pixels" * 200


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    yield server
    server.close()


def desk_with(backend: str, database_url: str, tmp_path: Path, **env: str) -> Any:
    return support.running_omnidesk(backend, database_url, tmp_path, OMNIDESK_RETRY_BASE="0.3", **env)


def line(desk: support.Running, fake: FakeTwilio, kind: str = "sms", **config: Any) -> flows.Line:
    return flows.Line(desk, desk.http, desk.url, f"Bearer {desk.admin_token}", fake, kind, **config)


def reply_with_files(line: flows.Line, conversation_id: int, text: str,
                     *files: tuple[str, bytes, str]) -> Any:
    return line.http.post(f"/api/v1/conversations/{conversation_id}/messages", data={"text": text},
                          files=[("files", f) for f in files], headers={"Authorization": line.token})


def file_ids(desk: support.Running, message_id: int) -> list[int]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(attachments.c.id).where(attachments.c.message_id == message_id)
                                 .order_by(attachments.c.id)).scalars())


def test_an_mms_reply_is_fetched_by_twilio_from_its_signed_link_and_forged_links_are_refused(
        backend: str, database_url: str, tmp_path: Path, fake: FakeTwilio) -> None:
    with desk_with(backend, database_url, tmp_path) as desk:
        sms = line(desk, fake)
        sms.message("Can you send me the invoice?", frm=US_CUSTOMER)
        conv = sms.conversation()
        answer = reply_with_files(sms, conv["id"], "Here it is", ("invoice.png", PNG, "image/png"),
                                  ("terms.pdf", b"%PDF-1.4 terms", "application/pdf"))
        assert answer.status_code == 202, answer.text
        message_id = answer.json()["id"]
        support.wait_for(lambda: fake.messages and len(fake.messages[0].fetched) == 2, what="Twilio fetching the files")
        (sent,) = fake.messages
        assert sent.form["Body"] == "Here it is" and sent.form["To"] == US_CUSTOMER
        assert sent.fetched == [(200, PNG, "image/png"), (200, b"%PDF-1.4 terms", "application/pdf")]
        png_id, pdf_id = file_ids(desk, message_id)
        link = sent.media_urls[0]
        assert link.startswith(f"{desk.url}/media/{png_id}?expires=")
        sms.wait_status(conv["id"], message_id, "delivered")

        query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        expires, signature = int(query["expires"]), query["signature"]
        assert 4 * 3600 - 60 < expires - time.time() <= 4 * 3600
        forged = [
            f"/media/{png_id}?expires={expires}&signature={signature[:-2]}AA",  # signature altered
            f"/media/{png_id}?expires={expires + 3600}&signature={signature}",  # expiry pushed back
            f"/media/{pdf_id}?expires={expires}&signature={signature}",  # another file, this file's signature
            f"/media/{png_id}?expires={expires}",  # no signature
            f"/media/{png_id}",
            media.signed_url(png_id, now=time.time() - 5 * 3600).removeprefix(desk.url),  # expired an hour ago
        ]
        for path in forged:
            refused = desk.http.get(path)
            assert refused.status_code == 403, (path, refused.text)
            assert PNG not in refused.content
        assert desk.http.get(link.removeprefix(desk.url)).content == PNG  # no cookie, no token: the link is enough
        assert desk.http.head(link.removeprefix(desk.url)).status_code == 200

        # A note's file, or a customer's, is never served by link, even correctly signed.
        note = reply_with_files(sms, conv["id"], "internal copy", ("copy.png", PNG, "image/png"))
        assert note.status_code == 202
        private = sms.http.post(f"/api/v1/conversations/{conv['id']}/messages", headers={"Authorization": sms.token},
                                data={"text": "for colleagues", "private": "true"},
                                files=[("files", ("secret.pdf", b"%PDF secret", "application/pdf"))])
        (secret_id,) = file_ids(desk, private.json()["id"])
        assert desk.http.get(media.signed_url(secret_id).removeprefix(desk.url)).status_code == 404
        assert desk.http.get(media.signed_url(10**9).removeprefix(desk.url)).status_code == 404


def test_a_link_that_expired_before_twilio_fetched_it_fails_the_reply_readably(
        backend: str, database_url: str, tmp_path: Path, fake: FakeTwilio) -> None:
    with desk_with(backend, database_url, tmp_path, OMNIDESK_MEDIA_LINK_SECONDS="1") as desk:
        fake.fetch_delay = 2.5  # Twilio's queue held the message past the link's life
        sms = line(desk, fake)
        sms.message("photo please", frm=US_CUSTOMER)
        conv = sms.conversation()
        message_id = reply_with_files(sms, conv["id"], "", ("shoe.png", PNG, "image/png")).json()["id"]
        failed = sms.wait_status(conv["id"], message_id, "failed")
        assert "could not fetch the reply's file" in failed["status_reason"] and "11200" in failed["status_reason"]
        (sent,) = fake.messages
        assert "Body" not in sent.form  # a file alone: no empty text
        assert [status for status, _, _ in sent.fetched] == [403]


def test_what_mms_and_whatsapp_cannot_carry_is_refused_before_it_is_stored(
        backend: str, database_url: str, tmp_path: Path, fake: FakeTwilio) -> None:
    with desk_with(backend, database_url, tmp_path) as desk:
        sms = line(desk, fake)
        sms.message("hola", frm=flows.CUSTOMER)  # a Spanish number: no MMS
        spain = sms.conversation()
        refused = reply_with_files(sms, spain["id"], "La factura", ("factura.png", PNG, "image/png"))
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith(f"files cannot go by SMS to {flows.CUSTOMER} (country ES): "
                                                   "Twilio sends MMS only to US and Canadian numbers")
        text = sms.reply(spain["id"], text="La factura va per correu")  # text alone goes
        assert text.status_code == 202
        sms.wait_status(spain["id"], text.json()["id"], "delivered")

        sms.message("hi", frm=US_CUSTOMER)
        us = next(c for c in sms.conversations() if c["id"] != spain["id"])
        big = ("a.jpg", b"\xff\xd8" + b"j" * 3_000_000, "image/jpeg")
        too_big = reply_with_files(sms, us["id"], "two photos", big, ("b.jpg", big[1], "image/jpeg"))
        assert too_big.status_code == 422 and "at most 5 MB in one message" in too_big.json()["detail"]
        zipped = reply_with_files(sms, us["id"], "the archive", ("all.zip", b"PK\x03\x04", "application/zip"))
        assert zipped.status_code == 422
        assert zipped.json()["detail"].startswith("all.zip: this channel cannot send application/zip files")

        whatsapp = line(desk, fake, "whatsapp")
        whatsapp.message("hola", frm="+34600333444")
        conv = whatsapp.conversation()
        two = reply_with_files(whatsapp, conv["id"], "two", ("a.png", PNG, "image/png"), ("b.png", PNG, "image/png"))
        assert two.status_code == 422 and "at most one file a message (2 attached)" in two.json()["detail"]
        gif = reply_with_files(whatsapp, conv["id"], "gif", ("a.gif", b"GIF89a", "image/gif"))
        assert gif.status_code == 422 and "cannot send image/gif files" in gif.json()["detail"]
        large = reply_with_files(whatsapp, conv["id"], "photo", ("a.png", b"\x89PNG" + b"p" * 5_500_000, "image/png"))
        assert large.status_code == 422 and "image/png files of at most 5 MB" in large.json()["detail"]
        assert len(fake.messages) == 1  # only the Spanish customer's text went
        ok = reply_with_files(whatsapp, conv["id"], "Aquí la tens", ("factura.pdf", b"%PDF-1.7 f", "application/pdf"))
        assert ok.status_code == 202
        support.wait_for(lambda: len(fake.messages) == 2 and fake.messages[1].fetched, what="the WhatsApp file fetched")
        assert fake.messages[1].form["To"] == "whatsapp:+34600333444"
        assert fake.messages[1].fetched == [(200, b"%PDF-1.7 f", "application/pdf")]
