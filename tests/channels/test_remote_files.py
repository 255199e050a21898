"""End to end through a channel that carries remote attachments (tests/channels/remote.py): the
message shows at once with its files pending (download 409), a worker fetches each from the
loopback file server, and the inbox sees them done or failed with a readable reason: a 404, a file
over OMNIDESK_MAX_ATTACHMENT_BYTES, a server that keeps failing; a passing failure is retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests import support
from tests.channels.remote import FileServer, file_server, remote_kind  # noqa: F401 - fixtures
from tests.support import Running, wait_for

CONFIG = {"secret": "a-shared-secret-of-the-shop", "callback_url": "http://127.0.0.1:9/replies"}


@pytest.fixture
def desk(backend: str, database_url: str, tmp_path, remote_kind: str) -> Iterator[Running]:  # type: ignore[no-untyped-def]  # noqa: F811
    with support.running_omnidesk(backend, database_url, tmp_path, OMNIDESK_MAX_ATTACHMENT_BYTES="2048",
                                  OMNIDESK_RETRY_BASE="0.2", OMNIDESK_MAX_ATTEMPTS="3") as running:
        yield running


def _files(desk: Running, conversation_id: int) -> dict[str, dict]:  # type: ignore[type-arg]
    [message] = desk.ok("GET", f"/conversations/{conversation_id}")["messages"]
    return {a["filename"]: a for a in message["attachments"]}


def test_remote_files_are_fetched_after_the_message_is_shown(desk: Running, file_server: FileServer) -> None:  # noqa: F811
    photo = bytes(range(256)) * 4  # 1 KiB
    file_server.files = {"/ok.png": (200, photo), "/flaky.png": (200, b"second time lucky"),
                         "/big.png": (200, b"x" * 3000), "/down.png": (200, b"never")}
    file_server.fail = {"/flaky.png": 1, "/down.png": 100}
    file_server.delay = 0.5  # the message must not wait for its files
    channel = desk.ok("POST", "/channels", json={"kind": "remote_test", "name": "Files", "config": CONFIG})
    names = ["ok.png", "flaky.png", "gone.png", "big.png", "down.png"]
    payload = {"message_id": "m1", "from": {"id": "cust-1"}, "text": "photos of the broken parcel",
               "files": [{"url": f"{file_server.url}/{n}", "filename": n, "content_type": "image/png"} for n in names]}
    assert desk.post_inbound(channel["id"], CONFIG["secret"], payload).status_code == 202
    [conv] = desk.ok("GET", "/conversations")["items"]
    first = _files(desk, conv["id"])
    assert first["ok.png"]["state"] == "pending" and first["ok.png"]["size"] == 0
    early = desk.api("GET", f"/attachments/{first['ok.png']['id']}")
    assert early.status_code == 409 and "still being fetched" in early.json()["detail"]

    def settled() -> dict | None:  # type: ignore[type-arg]
        files = _files(desk, conv["id"])
        return files if all(a["state"] != "pending" for a in files.values()) else None

    files = wait_for(settled, timeout=30, what="every file fetched or failed")
    assert {n: a["state"] for n, a in files.items()} == {
        "ok.png": "done", "flaky.png": "done", "gone.png": "failed", "big.png": "failed", "down.png": "failed"}
    assert files["ok.png"]["size"] == 1024 and files["ok.png"]["error"] is None
    assert "HTTP 404" in files["gone.png"]["error"]
    assert files["big.png"]["error"].startswith("the file is 3000 bytes; files over 2048 bytes are not kept")
    assert files["down.png"]["error"] == "gave up after 3 attempts: file server answered HTTP 503"
    got = desk.api("GET", f"/attachments/{files['ok.png']['id']}")
    assert got.status_code == 200 and got.content == photo
    assert desk.api("GET", f"/attachments/{files['flaky.png']['id']}").content == b"second time lucky"
    refused = desk.api("GET", f"/attachments/{files['gone.png']['id']}")
    assert refused.status_code == 409 and "could not be fetched" in refused.json()["detail"]
    assert "HTTP 404" in refused.json()["detail"]
    assert file_server.gets.count("/ok.png") == 1 and file_server.gets.count("/flaky.png") == 2
    assert file_server.gets.count("/down.png") == 3
    # Each file's move to done or failed is an event of its conversation, once.
    from store.events import events

    with desk.engine.connect() as conn:
        told = conn.execute(select(events.c.conversation_id, events.c.data)
                            .where(events.c.type == "message.updated")).all()
    assert sorted((t.data["attachment_id"], t.data["state"]) for t in told) == sorted(
        (a["id"], a["state"]) for a in files.values())
    assert {t.conversation_id for t in told} == {conv["id"]}
    # The provider sends the webhook again: nothing stored or fetched twice.
    assert desk.post_inbound(channel["id"], CONFIG["secret"], payload).status_code == 202
    assert len(_files(desk, conv["id"])) == 5
    assert file_server.gets.count("/ok.png") == 1


@pytest.mark.no_scheduler
def test_the_sweep_fetches_what_the_broker_lost(backend: str, database_url: str, tmp_path, remote_kind: str,  # type: ignore[no-untyped-def]  # noqa: F811
                                                file_server: FileServer) -> None:  # noqa: F811
    """A file whose job never ran (the broker lost it) is found by the sweep and fetched."""
    import workers
    from connectors.base import Identity, InboundMessage, RemoteAttachment
    from store.inbound import record_inbound

    file_server.files = {"/lost.png": (200, b"found again")}
    with support.running_omnidesk(backend, database_url, tmp_path, scheduler=False,
                                  OMNIDESK_SWEEP_GRACE="0.2") as desk:
        channel = desk.ok("POST", "/channels", json={"kind": "remote_test", "name": "Files", "config": CONFIG})
        message = InboundMessage(external_id="m1", sender=Identity("c1"), text="see attached", thread_key="t",
                                 remote_attachments=(RemoteAttachment(f"{file_server.url}/lost.png", "lost.png",
                                                                      "image/png"),))
        record_inbound(desk.engine, channel["id"], [message])  # stored, no job rung
        [conv] = desk.ok("GET", "/conversations")["items"]
        assert _files(desk, conv["id"])["lost.png"]["state"] == "pending"
        import time

        time.sleep(0.3)
        workers.sweep.send()
        done = wait_for(lambda: (a := _files(desk, conv["id"])["lost.png"])["state"] == "done" and a,
                        timeout=15, what="the swept fetch")
        assert desk.api("GET", f"/attachments/{done['id']}").content == b"found again"
