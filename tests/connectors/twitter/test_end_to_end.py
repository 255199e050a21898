"""X end to end, on the embedded default and on PostgreSQL + Redis: the stand-in for X's API
(tests/fakes/twitter.py) and omnidesk's real web, workers and scheduler. The channel created
through the API is all it takes: mentions and DMs become conversations, agents' replies reach X in
public under the customer's tweet or by DM to the right person."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from store.sql import messages
from tests.fakes.twitter import CONSUMER_SECRET, FakeX
from tests.support import Running, wait_for


@pytest.fixture
def x() -> Iterator[FakeX]:
    fake = FakeX(shop_id=str(1_500_000_000_000_000_000 + secrets.randbelow(10**15)))  # paced per account
    yield fake
    fake.close()


def x_channel(desk: Running, x: FakeX, **extra: Any) -> int:
    channel = desk.ok("POST", "/channels", json={"kind": "twitter", "name": "@shop on X",
                                                 "config": x.channel_config(poll_interval=1, **extra)})
    assert channel["status"] == "ok"
    assert not {"consumer_secret", "access_token_secret", "bearer_token"} & set(channel["config"])
    return channel["id"]


def conversation_with(desk: Running, text: str, timeout: float = 15) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for item in desk.ok("GET", "/conversations")["items"]:
            detail = desk.ok("GET", f"/conversations/{item['id']}")
            if any(m["text"] == text for m in detail["messages"]):
                return detail
        return None
    return wait_for(find, timeout=timeout, interval=0.2, what=f"a conversation with {text!r}")


def messages_of(desk: Running, conversation_id: int) -> list[dict[str, Any]]:
    return desk.ok("GET", f"/conversations/{conversation_id}")["messages"]


def stored_count(desk: Running) -> int:
    with desk.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages).where(messages.c.direction == "in")).scalar_one()


def test_a_mention_is_answered_in_public_and_a_dm_by_dm(omnidesk: Running, x: FakeX) -> None:
    agent = omnidesk.agent("Ana", languages=[])
    marta, jan = x.user("2244994945", "Marta Ruiz", "martaruiz"), x.user("987654321", "Jan", "jkowal")
    x_channel(omnidesk, x)
    mention = x.mention(marta, "@shop my order #4411 has not arrived")
    conv = conversation_with(omnidesk, "@shop my order #4411 has not arrived")
    assert conv["contact"]["name"] == "Marta Ruiz (@martaruiz)"
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"],
                json={"text": "Sorry Marta, we're checking it now"})
    [reply] = wait_for(lambda: x.tweets, what="the public reply at X")
    assert reply == {"id": reply["id"], "text": "Sorry Marta, we're checking it now",
                     "in_reply_to_tweet_id": mention["id"], "author_id": x.shop_id}
    wait_for(lambda: messages_of(omnidesk, conv["id"])[-1]["status"] == "sent", what="the reply marked sent")

    # She answers our reply: the same conversation, and the next reply goes under her new tweet.
    again = x.mention(marta, "@shop thanks, any date?", reply_to=reply["id"], conversation=mention["id"])
    wait_for(lambda: len(messages_of(omnidesk, conv["id"])) == 3, what="her answer in the same conversation")
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", token=agent["token"], json={"text": "Tomorrow!"})
    wait_for(lambda: len(x.tweets) == 2, timeout=25, what="the second public reply (tweets paced 100/15 min)")
    assert x.tweets[1]["in_reply_to_tweet_id"] == again["id"]

    # Two customers write by DM: each gets their answer, and only they do.
    x.dm(jan, "Hi, private question about my invoice")
    x.dm(marta, "Here is my address: Calle Mayor 1")
    jan_conv = conversation_with(omnidesk, "Hi, private question about my invoice")
    marta_dm = conversation_with(omnidesk, "Here is my address: Calle Mayor 1")
    assert jan_conv["id"] != marta_dm["id"] != conv["id"]
    omnidesk.ok("POST", f"/conversations/{jan_conv['id']}/messages", json={"text": "Jan: invoice sent"})
    omnidesk.ok("POST", f"/conversations/{marta_dm['id']}/messages", json={"text": "Marta: address noted"})
    wait_for(lambda: len(x.dms) == 2, what="two DMs at X")
    assert sorted((d["to"], d["text"]) for d in x.dms) == sorted([(jan, "Jan: invoice sent"),
                                                                    (marta, "Marta: address noted")])
    assert len(x.tweets) == 2  # nothing more in public
    time.sleep(1.5)  # polls went on: our own DMs, listed among X's events, are not customer messages
    assert stored_count(omnidesk) == 4


def test_a_public_reply_over_280_characters_is_refused_and_a_dm_takes_it(omnidesk: Running, x: FakeX) -> None:
    marta = x.user("2244994945", "Marta Ruiz", "martaruiz")
    x_channel(omnidesk, x)
    x.mention(marta, "@shop how do returns work?")
    conv = conversation_with(omnidesk, "@shop how do returns work?")
    long = "Returns: " + "you can send anything back within 30 days. " * 8
    refused = omnidesk.api("POST", f"/conversations/{conv['id']}/messages", json={"text": long})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail.startswith(f"the reply counts {len(long)} characters as X weighs them") and "at most 280" in detail
    cjk = omnidesk.api("POST", f"/conversations/{conv['id']}/messages", json={"text": "返品は30日以内です。" * 15})
    assert cjk.status_code == 422 and "at most 280" in cjk.json()["detail"]  # 150 characters, weighing 300
    assert len(messages_of(omnidesk, conv["id"])) == 1  # nothing stored, nothing sent
    # Moved to DMs: the long answer goes, privately, to her; her DMs join this conversation.
    moved = omnidesk.ok("POST", f"/conversations/{conv['id']}/move-to-dm")
    assert moved["id"] == conv["id"]
    omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": long})
    wait_for(lambda: x.dms, what="the long answer by DM")
    assert x.dms[0]["to"] == marta and x.dms[0]["text"] == long and x.tweets == []
    x.dm(marta, "Great, thanks")
    wait_for(lambda: len(messages_of(omnidesk, conv["id"])) == 3, what="her DM in the moved conversation")
    assert len(omnidesk.ok("GET", "/conversations")["items"]) == 1


def test_rate_limits_hold_polling_until_the_reset_and_sends_retry_after_it(omnidesk: Running, x: FakeX) -> None:
    marta = x.user("2244994945", "Marta Ruiz", "martaruiz")
    x.limit("mentions", times=1000, reset_in=4)  # every call until the window resets
    started = time.time()
    channel_id = x_channel(omnidesk, x, direct_messages=False)
    x.mention(marta, "@shop hello?")
    channel = wait_for(lambda: (c := omnidesk.ok("GET", f"/channels/{channel_id}"))["status"] == "error" and c,
                       what="the channel showing the rate limit")
    assert "rate limit" in channel["last_error"]
    next_poll = datetime.fromisoformat(channel["next_poll_at"]).replace(tzinfo=UTC).timestamp()
    assert started + 2.5 < next_poll < started + 6  # at the reset, not the usual backoff
    calls = len(x.calls(f"/2/users/{x.shop_id}/mentions"))
    time.sleep(1.5)
    assert len(x.calls(f"/2/users/{x.shop_id}/mentions")) == calls  # no poll meanwhile
    conv = conversation_with(omnidesk, "@shop hello?", timeout=15)  # after the reset
    wait_for(lambda: omnidesk.ok("GET", f"/channels/{channel_id}")["status"] == "ok", what="the channel ok again")

    x.limit("tweets", times=1, reset_in=3)
    limited_at = time.time()
    reply = omnidesk.ok("POST", f"/conversations/{conv['id']}/messages", json={"text": "Hi Marta!"})
    pending = wait_for(lambda: next(m for m in messages_of(omnidesk, conv["id"]) if m["id"] == reply["id"])
                       ["status_reason"], what="the rate limit shown on the reply")
    assert "rate limit" in pending
    wait_for(lambda: x.tweets, timeout=15, what="the reply sent after the reset")
    assert time.time() - limited_at >= 2
    wait_for(lambda: messages_of(omnidesk, conv["id"])[-1]["status"] == "sent", what="the reply marked sent")


def sign(body: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(CONSUMER_SECRET.encode(), body, hashlib.sha256).digest()).decode()


def test_webhooks_answer_the_crc_check_and_meet_polling_on_one_copy(omnidesk: Running, x: FakeX) -> None:
    channel_id = x_channel(omnidesk, x, webhooks=True)
    crc = omnidesk.http.get(f"/webhooks/{channel_id}", params={"crc_token": "abc123"})
    assert crc.status_code == 200 and crc.json() == {"response_token": sign(b"abc123")}
    marta = x.user("2244994945", "Marta Ruiz", "martaruiz")
    dm = x.dm(marta, "Sent by webhook and by poll")
    body = json.dumps({"for_user_id": x.shop_id, "direct_message_events": [{
        "type": "message_create", "id": dm["id"], "created_timestamp": str(int(time.time() * 1000)),
        "message_create": {"target": {"recipient_id": x.shop_id}, "sender_id": marta,
                           "message_data": {"text": "Sent by webhook and by poll"}}}],
        "users": {marta: {"id": marta, "name": "Marta Ruiz", "screen_name": "martaruiz"}}}).encode()
    bad = omnidesk.http.post(f"/webhooks/{channel_id}", content=body,
                             headers={"x-twitter-webhooks-signature": "sha256=AAAA"})
    assert bad.status_code == 403
    for _ in range(2):  # X redelivers
        answer = omnidesk.http.post(f"/webhooks/{channel_id}", content=body,
                                    headers={"x-twitter-webhooks-signature": sign(body)})
        assert answer.status_code == 202
    conv = conversation_with(omnidesk, "Sent by webhook and by poll")
    time.sleep(2.5)  # the poller has seen it too by now
    assert len(messages_of(omnidesk, conv["id"])) == 1 and stored_count(omnidesk) == 1
    liked = json.dumps({"for_user_id": x.shop_id, "favorite_events": [{"id": "1"}]}).encode()
    ignored = omnidesk.http.post(f"/webhooks/{channel_id}", content=liked,
                                 headers={"x-twitter-webhooks-signature": sign(liked)})
    assert ignored.status_code == 200 and stored_count(omnidesk) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_closed_dms_fail_the_reply_and_a_block_makes_the_customer_unreachable(omnidesk: Running, x: FakeX) -> None:
    jan, ola = x.user("987654321", "Jan", "jkowal"), x.user("55555", "Ola", "ola_n")
    x_channel(omnidesk, x)
    x.dm(jan, "hello")
    x.dm(ola, "hi there")
    jan_conv, ola_conv = conversation_with(omnidesk, "hello"), conversation_with(omnidesk, "hi there")
    x.closed_dms.add(jan)
    x.blocked_by.add(ola)
    omnidesk.ok("POST", f"/conversations/{jan_conv['id']}/messages", json={"text": "Hi Jan"})
    omnidesk.ok("POST", f"/conversations/{ola_conv['id']}/messages", json={"text": "Hi Ola"})
    for conv, words in ((jan_conv, "You cannot send messages to this user"), (ola_conv, "blocked you")):
        failed = wait_for(lambda conv=conv: (m := messages_of(omnidesk, conv["id"])[-1])["status"] == "failed" and m,
                          what="the reply failed")
        assert words in failed["status_reason"]
    # Jan may still be answered (DMs closed: a public reply could reach him); Ola no longer.
    assert omnidesk.api("POST", f"/conversations/{jan_conv['id']}/messages", json={"text": "again"}).status_code == 202
    refused = omnidesk.api("POST", f"/conversations/{ola_conv['id']}/messages", json={"text": "again"})
    assert refused.status_code == 422 and "blocked you" in refused.json()["detail"]


def test_a_dm_photo_is_fetched_into_the_conversation(omnidesk: Running, x: FakeX) -> None:
    jan = x.user("987654321", "Jan", "jkowal")
    x_channel(omnidesk, x)
    image = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
    x.dm(jan, "the box arrived broken", media=x.photo(image))
    conv = conversation_with(omnidesk, "the box arrived broken")
    file = wait_for(lambda: (f := messages_of(omnidesk, conv["id"])[0]["attachments"][0])["state"] == "done" and f,
                    what="the photo fetched")
    assert (file["filename"], file["content_type"], file["size"]) == ("photo.jpg", "image/jpeg", len(image))
    downloaded = omnidesk.api("GET", f"/attachments/{file['id']}")
    assert downloaded.status_code == 200 and downloaded.content == image


@pytest.mark.parametrize("backend", ["sqlite"])
def test_move_to_dm_is_refused_where_it_cannot_be(omnidesk: Running, x: FakeX, callback: Any) -> None:
    marta = x.user("2244994945", "Marta Ruiz", "martaruiz")
    x_channel(omnidesk, x)
    x.dm(marta, "a DM first")
    dm_conv = conversation_with(omnidesk, "a DM first")
    x.mention(marta, "@shop and in public")
    public_conv = conversation_with(omnidesk, "@shop and in public")
    taken = omnidesk.api("POST", f"/conversations/{public_conv['id']}/move-to-dm")
    assert taken.status_code == 409
    assert taken.json()["detail"].startswith(f"the customer's direct messages are open in conversation {dm_conv['id']}")
    assert omnidesk.ok("POST", f"/conversations/{dm_conv['id']}/move-to-dm")["id"] == dm_conv["id"]  # there already
    omnidesk.ok("POST", f"/conversations/{dm_conv['id']}/resolve")
    omnidesk.ok("POST", f"/conversations/{public_conv['id']}/move-to-dm")  # free now
    omnidesk.ok("POST", f"/conversations/{public_conv['id']}/messages", json={"text": "continuing here"})
    wait_for(lambda: x.dms, what="the DM")
    assert x.dms[0]["to"] == marta and x.tweets == []

    api_channel, secret = omnidesk.api_channel(callback.url)
    assert omnidesk.post_inbound(api_channel, secret, {"message_id": "m1", "from": {"id": "c1"},
                                                       "text": "from the shop's form"}).status_code == 202
    form = conversation_with(omnidesk, "from the shop's form")
    refused = omnidesk.api("POST", f"/conversations/{form['id']}/move-to-dm")
    assert refused.status_code == 409 and "no direct messages" in refused.json()["detail"]
    assert omnidesk.api("POST", "/conversations/999999/move-to-dm").status_code == 404
