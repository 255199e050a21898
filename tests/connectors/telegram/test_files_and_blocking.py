"""Telegram's files fetched by a worker and stored as attachments, and a customer who blocks the bot,
end to end on both deployments of this process, against the stand-in Bot API."""

from __future__ import annotations

from typing import Any

from tests.connectors.telegram.test_end_to_end import (
    CHAT,
    answer,
    conversation_of,
    settled,
    telegram_channel,
    update,
)
from tests.fakes.telegram import FakeTelegram
from tests.support import Running, wait_for


def _attachments(desk: Running, conversation: int) -> list[dict[str, Any]]:
    return desk.ok("GET", f"/conversations/{conversation}")["messages"][0]["attachments"]


def test_a_photo_and_a_voice_note_are_fetched_and_stored(omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    telegram_channel(omnidesk, fake, token)
    photo = b"\xff\xd8\xff\xe0 a photo of a broken box"
    file_id, unique = fake.add_file(token, photo, "photos/file_12.jpg")
    data = update("photo")
    data["message"]["photo"][-1].update(file_id=file_id, file_unique_id=unique, file_size=len(photo))
    fake.push(token, data)
    conversation = conversation_of(omnidesk, f"{CHAT}:1043")
    [file] = wait_for(lambda: (a := _attachments(omnidesk, conversation)) and a[0]["state"] == "done" and a,
                      timeout=30, what="the photo fetched")
    assert (file["filename"], file["content_type"], file["size"]) == (f"photo-{unique}.jpg", "image/jpeg", len(photo))
    download = omnidesk.api("GET", f"/attachments/{file['id']}")
    assert download.status_code == 200 and download.content == photo

    voice = update("voice", message_id=1099)  # its file_id is unknown to Telegram: gone
    fake.push(token, voice)
    gone = conversation_of(omnidesk, f"{CHAT}:1099")
    assert gone == conversation
    failed = wait_for(lambda: next((a for m in omnidesk.ok("GET", f"/conversations/{conversation}")["messages"]
                                    for a in m["attachments"] if a["state"] == "failed"), None),
                      timeout=60, what="the voice note failed")
    assert "invalid file_id" in failed["error"].lower()


def test_a_customer_who_blocks_the_bot_is_marked_and_replies_are_refused(
        omnidesk: Running, fake: FakeTelegram) -> None:
    token = fake.add_bot()
    telegram_channel(omnidesk, fake, token, mode="webhook")
    fake.push(token, update("text"))
    conversation = conversation_of(omnidesk, f"{CHAT}:1042")
    fake.block(token, CHAT)
    reply = answer(omnidesk, conversation, "Hola Marta!")
    failed = settled(omnidesk, conversation, reply)
    assert failed["status"] == "failed" and "blocked" in failed["status_reason"]
    detail = omnidesk.ok("GET", f"/conversations/{conversation}")
    assert "blocked" in (detail["unreachable_reason"] or "")
    refused = omnidesk.api("POST", f"/conversations/{conversation}/messages", json={"text": "Hola?"})
    assert refused.status_code == 422 and "blocked" in refused.text

    fake.bots[token].blocked.clear()  # she starts the bot again: Telegram says so
    started = update("my_chat_member_blocked")
    started["my_chat_member"]["new_chat_member"]["status"] = "member"
    fake.push(token, started)
    wait_for(lambda: omnidesk.ok("GET", f"/conversations/{conversation}")["unreachable_reason"] is None,
             what="the customer reachable again")
    again = answer(omnidesk, conversation, "Benvinguda de nou!")
    assert settled(omnidesk, conversation, again)["status"] == "sent"
