"""The X connector against the stand-in (tests/fakes/twitter.py) through tweepy's real client:
polling mentions and DMs page by page with their cursors, sending in public and by DM, and X's
failures (rate limits, refusals, credentials, no answer) as omnidesk's errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import Identity, OutboundMessage
from connectors.errors import ConfigError, PermanentError, RecipientUnreachable, TransientError
from connectors.twitter import TwitterConnector, poll
from connectors.twitter.config import TwitterConfig
from tests.fakes.twitter import SHOP_ID, FakeX, Limit
from tests.support import free_port


@pytest.fixture
def x() -> Iterator[FakeX]:
    fake = FakeX()
    yield fake
    fake.close()


def connector(x: FakeX, **extra: Any) -> TwitterConnector:
    return TwitterConnector(TwitterConfig(**x.channel_config(**extra)))


def drain(c: TwitterConnector, cursor: dict[str, Any] | None) -> tuple[list[str], dict[str, Any] | None, list[int]]:
    """Every external id polled (in order), the last cursor, and the sizes of the batches."""
    ids: list[str] = []
    sizes: list[int] = []
    for batch in c.poll(cursor):
        ids += [e.external_id for e in batch.events]
        sizes.append(len(batch.events))
        cursor = batch.cursor
    return ids, cursor, sizes


def customers(x: FakeX, n: int) -> list[str]:
    return [x.user(str(9_000 + i), f"Customer {i}", f"customer{i}") for i in range(n)]


def test_mentions_and_dms_come_oldest_first_once_and_the_cursor_resumes(x: FakeX) -> None:
    people = customers(x, 5)
    mentions = [x.mention(people[n % 5], f"@shop question {n}") for n in range(230)]
    dms = [x.dm(people[n % 5], f"dm {n}") for n in range(140)]
    c = connector(x)
    ids, cursor, sizes = drain(c, None)
    assert ids == [f"tweet:{t['id']}" for t in mentions] + [f"dm:{e['id']}" for e in dms]
    assert max(sizes) <= poll.PAGE_SIZE
    assert cursor is not None and cursor["mentions_since_id"] == mentions[-1]["id"]
    assert cursor["dm_seen"][0] == dms[-1]["id"]
    # Nothing new: nothing again, and the mentions asked for since the newest.
    assert drain(c, cursor)[0] == []
    assert x.calls(f"/2/users/{SHOP_ID}/mentions")[-1]["since_id"] == [mentions[-1]["id"]]
    # New ones, and our own DM among the events: only the customers'.
    x._send_dm(people[0], {"text": "our reply"})
    later = [x.mention(people[1], "@shop again"), x.dm(people[2], "and again")]
    assert drain(c, cursor)[0] == [f"tweet:{later[0]['id']}", f"dm:{later[1]['id']}"]


def test_a_walk_stops_at_the_first_dm_already_seen(x: FakeX) -> None:
    people = customers(x, 2)
    for n in range(300):
        x.dm(people[n % 2], f"old {n}")
    c = connector(x, mentions=False)
    _, cursor, _ = drain(c, None)
    before = len(x.calls("/2/dm_events"))
    x.dm(people[0], "new")
    ids, _, _ = drain(c, cursor)
    assert len(ids) == 1 and len(x.calls("/2/dm_events")) - before == 1  # one page, not three


def test_dms_arriving_during_a_walk_shift_the_pages_but_are_stored_once(x: FakeX) -> None:
    people = customers(x, 3)
    for n in range(250):
        x.dm(people[n % 3], f"before {n}")
    x.page_delay = 0.2
    arrived: list[str] = []

    def customers_write() -> None:  # each new event pushes every later page back by one
        for n in range(6):
            arrived.append(x.dm(people[0], f"during {n}")["id"])
            time.sleep(0.07)

    writer = threading.Thread(target=customers_write)
    writer.start()
    ids, cursor, _ = drain(connector(x, mentions=False), None)
    writer.join()
    assert len(ids) == len(set(ids))  # the overlap between pages is not handed over twice
    assert len(ids) >= 250
    rest, _, _ = drain(connector(x, mentions=False), cursor)
    assert sorted(set(ids) | set(rest)) == sorted(f"dm:{e['id']}" for e in x.events)
    assert not set(ids) & set(rest)


def test_a_rate_limit_mid_walk_hands_over_what_it_has_without_moving_the_cursor(x: FakeX) -> None:
    people = customers(x, 2)
    mentions = [x.mention(people[n % 2], f"@shop {n}") for n in range(250)]
    x.limit("mentions", times=1, reset_in=30, after=1)  # page 1 answered, page 2 limited
    c = connector(x, direct_messages=False)
    handed: list[str] = []
    cursor: dict[str, Any] = {"mentions_since_id": "5"}
    with pytest.raises(TransientError) as stopped:
        for batch in c.poll(cursor):
            handed += [e.external_id for e in batch.events]
            assert batch.cursor == cursor  # older pages are missing: nothing may move
    assert 25 <= stopped.value.retry_after <= 31 and "rate limit" in stopped.value.reason
    assert handed == [f"tweet:{t['id']}" for t in mentions[-100:]]  # the newest page, stored meanwhile
    ids, after, _ = drain(c, cursor)  # the limit is over (times=1): all of it, the first page again
    assert ids == [f"tweet:{t['id']}" for t in mentions] and after is not None
    assert after["mentions_since_id"] == mentions[-1]["id"]


def test_a_rate_limited_timeline_does_not_hold_up_the_other(x: FakeX) -> None:
    person = customers(x, 1)[0]
    x.mention(person, "@shop hi")
    dm = x.dm(person, "hello")
    x.limit("mentions", times=5, reset_in=60)
    handed: list[str] = []
    with pytest.raises(TransientError) as stopped:
        for batch in connector(x).poll(None):
            handed += [e.external_id for e in batch.events]
    assert handed == [f"dm:{dm['id']}"] and stopped.value.retry_after > 50


def outbound(text: str, *, to: str, in_reply_to: str | None = None, thread_key: str | None = None) -> OutboundMessage:
    return OutboundMessage(message_id=1, conversation_id=1, conversation_number=1, to=Identity(to), text=text,
                           in_reply_to=in_reply_to, thread_key=thread_key)


def test_replies_go_in_public_under_the_customers_tweet_or_by_dm(x: FakeX) -> None:
    person = customers(x, 1)[0]
    tweet = x.mention(person, "@shop where is it?")
    c = connector(x)
    sent = c.send(outbound("On its way!", to=person, in_reply_to=f"tweet:{tweet['id']}",
                           thread_key=f"x-thread:{tweet['id']}"))
    assert x.tweets == [{"id": sent.external_id.removeprefix("tweet:"), "text": "On its way!",
                         "in_reply_to_tweet_id": tweet["id"], "author_id": SHOP_ID}]
    dm = c.send(outbound("Sent you the tracking number", to=person, in_reply_to="dm:5",
                         thread_key=f"x-dm:{person}-{SHOP_ID}"))
    assert x.dms == [{"to": person, "text": "Sent you the tracking number",
                      "dm_event_id": dm.external_id.removeprefix("dm:")}]
    # Moved to DMs: the thread key says DM though the customer's last message was a tweet.
    c.send(outbound("More here", to=person, in_reply_to=f"tweet:{tweet['id']}", thread_key=f"x-dm:{person}-{SHOP_ID}"))
    assert x.dms[-1]["text"] == "More here" and len(x.tweets) == 1


def test_x_refusals_are_permanent_with_xs_words(x: FakeX) -> None:
    person = customers(x, 1)[0]
    tweet = x.mention(person, "@shop ?")
    c = connector(x)
    with pytest.raises(PermanentError, match="Your Tweet text is too long"):
        c.send(outbound("x" * 281, to=person, in_reply_to=f"tweet:{tweet['id']}"))
    with pytest.raises(PermanentError, match="deleted or not visible"):
        c.send(outbound("hi", to=person, in_reply_to="tweet:123"))
    x.closed_dms.add(person)
    with pytest.raises(PermanentError, match="cannot send messages to this user"):
        c.send(outbound("hi", to=person, in_reply_to="dm:1"))
    with pytest.raises(PermanentError, match="no tweet of the customer's"):
        c.send(outbound("hi", to=person, thread_key="x-thread:1"))


def test_rate_limited_sends_are_retried_after_the_reset(x: FakeX) -> None:
    person = customers(x, 1)[0]
    x.limit("dm_send", times=1, reset_in=12)
    c = connector(x)
    with pytest.raises(TransientError) as limited:
        c.send(outbound("hi", to=person, in_reply_to="dm:1"))
    assert 10 <= limited.value.retry_after <= 13
    assert c.send(outbound("hi", to=person, in_reply_to="dm:1")).external_id  # the window is not over, but
    # the fake's forced 429 was one call: X answers again once its counter allows


def test_credentials_and_an_unreachable_x(x: FakeX) -> None:
    connector(x).check()
    with pytest.raises(ConfigError, match="not to user_id 42"):
        connector(x, user_id="42").check()
    with pytest.raises(ConfigError, match="credentials"):
        connector(x, consumer_key="wrong").check()
    bad = connector(x, consumer_key="wrong")
    with pytest.raises(ConfigError, match="refused the channel's credentials"):
        list(bad.poll(None))
    gone = TwitterConnector(TwitterConfig(**{**x.channel_config(), "api_base_url": f"http://127.0.0.1:{free_port()}",
                                             "timeout": 2}))
    with pytest.raises(TransientError, match="cannot reach X"):
        gone.send(outbound("hi", to="5", in_reply_to="dm:1"))


def test_a_window_used_up_mid_walk_stops_before_xs_429(x: FakeX) -> None:
    person = customers(x, 1)[0]
    events = [x.dm(person, f"dm {n}") for n in range(250)]
    x.limits["dm_events"] = Limit(remaining=1, reset=time.time() + 40)  # one read left in this window
    handed: list[str] = []
    with pytest.raises(TransientError) as stopped:
        for batch in connector(x, mentions=False).poll(None):
            handed += [e.external_id for e in batch.events]
            assert batch.cursor == {}  # older pages are missing: nothing may move
    assert "used up" in stopped.value.reason and 35 <= stopped.value.retry_after <= 41
    assert handed == [f"dm:{e['id']}" for e in events[-100:]]
    assert len(x.calls("/2/dm_events")) == 1  # no read X would refuse


def test_secrets_stay_out_of_the_logs_even_at_debug(x: FakeX, caplog: pytest.LogCaptureFixture) -> None:
    person = customers(x, 1)[0]
    x.mention(person, "@shop hi")
    x.dm(person, "hello")
    config = x.channel_config()
    with caplog.at_level("DEBUG"):
        c = connector(x)
        drain(c, None)
        c.send(outbound("hi", to=person, in_reply_to="dm:1"))
        x.limit("dm_send", times=1)
        with pytest.raises(TransientError):
            c.send(outbound("hi again", to=person, in_reply_to="dm:1"))
    logged = caplog.text
    assert x.dms and "Making API request" not in logged
    for secret in ("consumer_secret", "access_token_secret", "bearer_token"):
        assert config[secret] not in logged


def test_media_are_fetched_with_the_accounts_signature_from_xs_hosts_only(x: FakeX) -> None:
    person = customers(x, 1)[0]
    photo = x.photo(b"\xff\xd8\xff" + b"j" * 5000)
    x.dm(person, "look", media=photo)
    [batch] = list(connector(x, mentions=False).poll(None))[:1]
    [file] = batch.events[0].remote_attachments
    assert (file.ref, file.filename, file.content_type) == (photo["url"], "photo.jpg", "image/jpeg")
    c = connector(x)
    fetched = c.fetch(file.ref, max_bytes=10_000)
    assert fetched.data == b"\xff\xd8\xff" + b"j" * 5000 and fetched.content_type == "image/jpeg"
    with pytest.raises(PermanentError, match="larger than 1000 bytes"):
        c.fetch(file.ref, max_bytes=1000)
    with pytest.raises(PermanentError, match="404"):
        c.fetch(x.url + "/1.1/ton/data/dm/gone.jpg", max_bytes=10_000)
    for elsewhere in ("https://attacker.example/steal.jpg", "file:///etc/passwd", "https://twimg.com.evil.example/a"):
        with pytest.raises(PermanentError, match="not a file of X's"):
            c.fetch(elsewhere, max_bytes=10_000)


def test_replies_are_paced_per_account_and_kind() -> None:
    c = TwitterConnector(TwitterConfig(consumer_key="ck", consumer_secret="cs", access_token="at",
                                       access_token_secret="ats", user_id="77"))
    [tweets] = c.send_limits(outbound("hi", to="5", in_reply_to="tweet:1", thread_key="x-thread:1"))
    [dms] = c.send_limits(outbound("hi", to="5", in_reply_to="dm:1", thread_key="x-dm:5-77"))
    assert (tweets.key, round(tweets.per_second * 900)) == ("twitter:77:tweets", 100)
    assert (dms.key, round(dms.per_second * 900)) == ("twitter:77:dms", 200)


def test_a_customer_who_blocked_the_account_is_unreachable_one_with_dms_closed_is_not(x: FakeX) -> None:
    blocker, closed = customers(x, 2)
    x.blocked_by.add(blocker)
    x.closed_dms.add(closed)
    c = connector(x)
    with pytest.raises(RecipientUnreachable, match="blocked you"):
        c.send(outbound("hi", to=blocker, in_reply_to="dm:1"))
    with pytest.raises(PermanentError) as refused:
        c.send(outbound("hi", to=closed, in_reply_to="dm:1"))
    assert not isinstance(refused.value, RecipientUnreachable)  # a public reply may still reach them


def test_a_new_channel_imports_back_to_import_since_days_only(x: FakeX) -> None:
    from datetime import UTC, datetime, timedelta

    person = customers(x, 1)[0]
    long_ago = datetime.now(UTC) - timedelta(days=10)
    for n in range(250):  # three pages of old ones: not even fetched past the first that reaches back
        x.mention(person, f"@shop old {n}", at=long_ago)
        x.dm(person, f"old dm {n}", at=long_ago)
    recent = [x.mention(person, "@shop this week", at=datetime.now(UTC) - timedelta(days=2)),
              x.dm(person, "dm this week", at=datetime.now(UTC) - timedelta(days=2))]
    ids, cursor, _ = drain(connector(x, import_since_days=7), None)
    assert ids == [f"tweet:{recent[0]['id']}", f"dm:{recent[1]['id']}"]
    assert len(x.calls("/2/dm_events")) == 1 and len(x.calls(f"/2/users/{SHOP_ID}/mentions")) == 1
    # After the first import the cut no longer applies: a late-arriving old-dated DM still comes in.
    late = x.dm(person, "sent offline, dated long ago", at=long_ago)
    assert drain(connector(x, import_since_days=7), cursor)[0] == [f"dm:{late['id']}"]
    everything, _, _ = drain(connector(x, import_since_days=None), None)
    assert len(everything) == 503
