"""The composer's files through the real server on both databases: multipart replies and notes
stored with their attachments in one transaction, the limits (10 MiB a file, 25 MiB in all, 10
files) answered 413/422 with nothing stored, a channel that cannot send files refusing a reply
with files at once (a private note takes them anywhere), JSON bodies unchanged, and CSRF on a
cookie-authenticated upload."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from connectors import REGISTRY
from store.sql import attachments, messages
from tests.support import CallbackServer, Running, wait_for
from tests.web.test_session import browser, sign_in

MiB = 1024 * 1024


def _conversation(running: Running, channel: tuple[int, str]) -> int:
    payload = {"message_id": "m-1", "from": {"id": "marta", "name": "Marta"}, "text": "hola"}
    assert running.post_inbound(*channel, payload).status_code == 202
    return wait_for(lambda: running.ok("GET", "/conversations")["items"], what="the conversation")[0]["id"]


def _stored(running: Running) -> tuple[int, int]:
    with running.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(messages).where(messages.c.direction == "out"))
                .scalar_one(), conn.execute(select(func.count()).select_from(attachments)).scalar_one())


def _post(running: Running, conv: int, files: list[tuple[str, Any]], **fields: str) -> Any:
    return running.api("POST", f"/conversations/{conv}/messages", data=fields, files=files)


def test_files_on_a_channel_that_sends_them(omnidesk: Running, callback: CallbackServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REGISTRY, "filed", "tests.web.filed:FiledConnector")
    channel = omnidesk.ok("POST", "/channels", json={"kind": "filed", "name": "Files", "config": {
        "secret": "s" * 20, "callback_url": callback.url}})
    conv = _conversation(omnidesk, (channel["id"], "s" * 20))

    sent = _post(omnidesk, conv, [("files", ("factura.pdf", b"%PDF-1.4 one", "application/pdf")),
                                  ("files", ("photo.jpg", b"\xff\xd8 two", "image/jpeg"))], text="Adjunto la factura")
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "pending"
    note = _post(omnidesk, conv, [("files", ("notes.txt", b"internal", "text/plain"))], private="true")
    assert note.status_code == 202 and note.json() == {"id": note.json()["id"], "status": "sent", "private": True}
    wait_for(lambda: len(callback.requests) == 1, what="the reply delivered")

    shown = {m["id"]: m for m in omnidesk.ok("GET", f"/conversations/{conv}")["messages"]}
    files = shown[sent.json()["id"]]["attachments"]
    assert [(f["filename"], f["content_type"], f["size"]) for f in files] == [
        ("factura.pdf", "application/pdf", 12), ("photo.jpg", "image/jpeg", 6)]
    assert shown[sent.json()["id"]]["text"] == "Adjunto la factura"
    assert shown[note.json()["id"]]["text"] == "" and shown[note.json()["id"]]["private"] is True
    download = omnidesk.api("GET", f"/attachments/{files[0]['id']}")
    assert download.content == b"%PDF-1.4 one"

    before = _stored(omnidesk)
    too_big = _post(omnidesk, conv, [("files", ("big.bin", b"x" * (10 * MiB + 1), "application/octet-stream"))],
                    text="big")
    assert too_big.status_code == 413 and "big.bin is larger than 10 MiB" in too_big.json()["detail"]
    in_all = _post(omnidesk, conv, [("files", (f"f{i}.bin", b"x" * (9 * MiB), "application/octet-stream"))
                                    for i in range(3)], text="three")
    assert in_all.status_code == 413 and "more than 25 MiB" in in_all.json()["detail"]
    many = _post(omnidesk, conv, [("files", (f"f{i}.txt", b"x", "text/plain")) for i in range(11)], text="many")
    assert many.status_code == 422 and "at most 10 files" in many.json()["detail"]
    empty = _post(omnidesk, conv, [], text="  ", private="false")
    assert empty.status_code == 422 and "text or files" in empty.json()["detail"]
    bad_flag = _post(omnidesk, conv, [("files", ("a.txt", b"a", "text/plain"))], private="yes")
    assert bad_flag.status_code == 422 and "private" in bad_flag.json()["detail"]
    assert _stored(omnidesk) == before  # nothing of the refused ones


def test_a_channel_without_files_refuses_them_at_once(omnidesk: Running, callback: CallbackServer) -> None:
    conv = _conversation(omnidesk, omnidesk.api_channel(callback.url))  # the API channel sends no files
    refused = _post(omnidesk, conv, [("files", ("a.pdf", b"%PDF", "application/pdf"))], text="here")
    assert refused.status_code == 422
    assert refused.json() == {"detail": "this channel cannot send attachments; send the text alone, or the files "
                                        "in a private note"}
    assert _stored(omnidesk) == (0, 0)
    assert _post(omnidesk, conv, [("files", ("a.pdf", b"%PDF", "application/pdf"))], private="true",
                 text="for us").status_code == 202
    assert _stored(omnidesk) == (1, 1)

    # JSON keeps working as before, with its validation errors.
    assert omnidesk.api("POST", f"/conversations/{conv}/messages", json={"text": "plain"}).status_code == 202
    bad = omnidesk.api("POST", f"/conversations/{conv}/messages", json={"text": ""})
    assert bad.status_code == 422 and "needs its text" in bad.json()["detail"]
    not_json = omnidesk.http.post(f"/api/v1/conversations/{conv}/messages", content=b"{nope",
                                  headers={"content-type": "application/json",
                                           "Authorization": f"Bearer {omnidesk.admin_token}"})
    assert not_json.status_code == 422 and "not JSON" in not_json.json()["detail"]
    wait_for(lambda: len(callback.requests) == 1, what="the JSON reply delivered")

    # Another agent's conversation: 404 before any file is looked at.
    ana = omnidesk.agent("Ana", online=False)
    joan = omnidesk.agent("Joan", online=False)
    omnidesk.ok("POST", f"/conversations/{conv}/assign", json={"agent_id": joan["id"]})
    hidden = omnidesk.api("POST", f"/conversations/{conv}/messages", token=ana["token"], data={"text": "x"},
                          files=[("files", ("a.txt", b"a", "text/plain"))])
    assert hidden.status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"])  # behaviour above the database
def test_a_cookie_upload_needs_its_csrf_token(omnidesk: Running, callback: CallbackServer) -> None:
    conv = _conversation(omnidesk, omnidesk.api_channel(callback.url))
    ana = omnidesk.agent("Ana", online=False, password="correct horse battery")
    omnidesk.ok("POST", f"/conversations/{conv}/assign", json={"agent_id": ana["id"]})
    with browser(omnidesk) as web:
        csrf = sign_in(web, ana["email"]).json()["csrf_token"]
        files = [("files", ("a.txt", b"a", "text/plain"))]
        forged = web.post(f"/conversations/{conv}/messages", data={"text": "x", "private": "true"}, files=files)
        assert forged.status_code == 403
        ok = web.post(f"/conversations/{conv}/messages", data={"text": "x", "private": "true"}, files=files,
                      headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 202, ok.text
