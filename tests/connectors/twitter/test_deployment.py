"""X as deployed (``web``, ``scheduler`` and ``worker`` processes on PostgreSQL + Redis): mentions
and DMs in, replies out to the stand-in; and a poller killed with SIGKILL in the middle of a poll,
while customers go on writing, resumes without losing or doubling a message."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, select

from store.db import normalise_url
from store.sql import messages
from tests import support
from tests.deployment import Deployment
from tests.fakes.twitter import FakeX

MENTIONS, DMS, CUSTOMERS = 450, 350, 40


def inbound_ids(database_url: str) -> list[str]:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(messages.c.external_id).where(messages.c.direction == "in")).scalars())
    finally:
        engine.dispose()


def test_a_poller_killed_mid_poll_resumes_without_loss_or_doubles_and_replies_reach_x(
    pg_url: str, tmp_path: Path
) -> None:
    x = FakeX(page_delay=0.3)  # a slow X: the poll is under way for seconds
    try:
        people = [x.user(str(3_000_000 + n), f"Customer {n}", f"customer{n}") for n in range(CUSTOMERS)]
        for n in range(MENTIONS):
            x.mention(people[n % CUSTOMERS], f"@shop mention {n}")
        for n in range(DMS):
            x.dm(people[n % CUSTOMERS], f"dm {n}")
        with Deployment(pg_url, tmp_path) as desk:
            agent = desk.ok("POST", "/agents", json={"name": "Ana", "email": "ana@shop.test", "capacity": 1000})
            desk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
            desk.ok("POST", "/channels", json={"kind": "twitter", "name": "@shop",
                                               "config": x.channel_config(poll_interval=1)})
            stop = threading.Event()

            def customers_write() -> None:  # new mentions and DMs all along, the kill included
                n = 0
                while not stop.wait(0.05):
                    x.mention(people[n % CUSTOMERS], f"@shop later {n}")
                    x.dm(people[n % CUSTOMERS], f"later dm {n}")
                    n += 1

            writer = threading.Thread(target=customers_write, daemon=True)
            writer.start()
            # Killed once the first batches are in, and before the poll is over.
            at_kill = support.wait_for(lambda: len(inbound_ids(pg_url)) or None, timeout=60, interval=0.02,
                                       what="the first batch stored")
            desk.kill_worker()
            assert at_kill < MENTIONS + DMS, at_kill
            time.sleep(1.0)
            desk.start_worker()
            time.sleep(3.0)
            stop.set()
            writer.join()

            expected = {f"tweet:{t['id']}" for t in x.mentions} | {
                f"dm:{e['id']}" for e in x.events if e["sender_id"] != x.shop_id}
            # The killed poller's lease (30 s) runs out, then the next poll takes over.
            support.wait_for(lambda: set(inbound_ids(pg_url)) >= expected, timeout=120, interval=0.5,
                             what="every mention and DM stored")
            stored = Counter(inbound_ids(pg_url))
            assert set(stored) == expected and max(stored.values()) == 1  # none lost, none doubled

            # Replies: in public under the customer's tweet, and by DM to the right person; the
            # public one meets X's rate limit first and goes after the reset.
            mention, dm = x.mentions[0], next(e for e in x.events if e["sender_id"] != x.shop_id)
            convs = {m["text"]: m for m in _all_conversation_messages(desk, {mention["text"], dm["text"]})}
            public, private = convs[mention["text"]]["conversation_id"], convs[dm["text"]]["conversation_id"]
            refused = desk.api.post(f"/api/v1/conversations/{public}/messages", json={"text": "x" * 281})
            assert refused.status_code == 422 and "at most 280" in refused.json()["detail"]
            x.limit("tweets", times=1, reset_in=3)
            limited_at = time.time()
            desk.ok("POST", f"/conversations/{public}/messages", json={"text": "Public answer"})
            desk.ok("POST", f"/conversations/{private}/messages", json={"text": "Private answer" + "!" * 500})
            support.wait_for(lambda: x.tweets and x.dms, timeout=30, what="both replies at X")
            assert [(t["text"], t["in_reply_to_tweet_id"]) for t in x.tweets] == [("Public answer", mention["id"])]
            assert time.time() - limited_at >= 2  # not before the reset
            assert [(d["text"], d["to"]) for d in x.dms] == [("Private answer" + "!" * 500, dm["sender_id"])]

            # Polling meets the limit: the channel shows it, and waits for the reset.
            x.limit("mentions", times=10_000, reset_in=5)
            limited_at = time.time()
            channel = support.wait_for(
                lambda: (c := desk.ok("GET", "/channels")["items"][0])["status"] == "error" and c, timeout=15,
                what="the channel showing the rate limit")
            assert "rate limit" in channel["last_error"]
            next_poll = datetime.fromisoformat(channel["next_poll_at"]).replace(tzinfo=UTC).timestamp()
            assert limited_at + 3 < next_poll < limited_at + 7
            x.mention(people[0], "@shop after the reset")
            support.wait_for(lambda: "tweet:" + x.mentions[-1]["id"] in inbound_ids(pg_url), timeout=20,
                             what="the mention after the reset")
            assert time.time() >= next_poll - 0.5
    finally:
        x.close()


def _all_conversation_messages(desk: Deployment, texts: set[str]) -> list[dict]:  # type: ignore[type-arg]
    """The inbound messages with these texts, each with its conversation id (via the store)."""
    engine = create_engine(normalise_url(str(desk.env["OMNIDESK_DATABASE_URL"])))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(messages.c.text, messages.c.conversation_id)
                                .where(messages.c.direction == "in", messages.c.text.in_(texts))).all()
    finally:
        engine.dispose()
    return [{"text": r.text, "conversation_id": r.conversation_id} for r in rows]
