"""``GET /metrics`` on both databases: Prometheus text whose numbers move as messages come in, the
queue fills and empties, replies go out or fail; the incremental message totals count every row
once; a dependency that is down shows as ``omnidesk_up 0``."""

from __future__ import annotations

import math
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, update

from connectors.base import Identity, InboundMessage
from store.inbound import record_inbound
from store.metrics import MessageTotals
from store.models import utcnow
from store.sql import channels, messages
from tests.support import CallbackServer, Running, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(desk: Running) -> Samples:
    answer = desk.http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_figures_move_with_messages_replies_and_failures(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, secret = omnidesk.api_channel(callback.url)
    ch = {"channel": str(channel_id), "kind": "api"}
    before = scrape(omnidesk)
    assert value(before, "omnidesk_up", dependency="database") == 1
    assert value(before, "omnidesk_up", dependency="broker") == 1
    assert value(before, "omnidesk_channel_up", **ch) == 1
    assert value(before, "omnidesk_messages_total", **ch, direction="in") is None
    assert value(before, "omnidesk_routing_latency_samples") == 0

    # Nobody online: two customers wait in the queue.
    agent = omnidesk.agent("Ana", online=False)
    for n in (1, 2):
        payload = {"message_id": f"q{n}", "from": {"id": f"c{n}"}, "text": f"hello {n}"}
        assert omnidesk.post_inbound(channel_id, secret, payload).status_code == 202
    waiting = wait_for(lambda: (s := scrape(omnidesk)) and value(s, "omnidesk_queue_depth", **ch) == 2 and s,
                       what="two conversations in the queue")
    assert value(waiting, "omnidesk_messages_total", **ch, direction="in") == 2
    assert value(waiting, "omnidesk_queue_oldest_wait_seconds", **ch) >= 0
    assert value(waiting, "omnidesk_routing_given_up", **ch) == 0

    # Ana comes online and takes both: the queue empties, routing latency has two figures.
    omnidesk.ok("PUT", f"/agents/{agent['id']}/presence", json={"status": "online"})
    routed = wait_for(lambda: (s := scrape(omnidesk)) and value(s, "omnidesk_queue_depth", **ch) is None and s,
                      what="the queue emptied")
    assert value(routed, "omnidesk_routing_latency_samples") == 2
    assert value(routed, "omnidesk_routing_latency_seconds", quantile="0.99") >= 0
    assert value(routed, "omnidesk_routing_due") == 0

    # One reply delivered, one refused by the shop (a 4xx fails at once).
    conversations = omnidesk.ok("GET", "/conversations")["items"]
    callback.answers = [2.0]  # the shop takes two seconds: the reply is in the backlog meanwhile
    omnidesk.ok("POST", f"/conversations/{conversations[0]['id']}/messages", token=agent["token"],
                json={"text": "on its way"})
    sending = wait_for(lambda: (s := scrape(omnidesk)) and value(s, "omnidesk_delivery_backlog", **ch) == 1 and s,
                       what="the reply in the backlog")
    assert value(sending, "omnidesk_delivery_backlog_oldest_seconds", **ch) >= 0
    wait_for(lambda: value(scrape(omnidesk), "omnidesk_recent_replies", **ch, status="delivered") == 1,
             what="delivered")
    assert value(scrape(omnidesk), "omnidesk_delivery_backlog", **ch) is None
    callback.answers = [400]
    omnidesk.ok("POST", f"/conversations/{conversations[1]['id']}/messages", token=agent["token"],
                json={"text": "which order?"})
    after = wait_for(lambda: (s := scrape(omnidesk)) and value(s, "omnidesk_recent_replies", **ch, status="failed") == 1
                     and s, what="the refused reply failed")
    assert value(after, "omnidesk_recent_replies", **ch, status="delivered") == 1
    assert value(after, "omnidesk_messages_total", **ch, direction="out") == 2
    assert value(after, "omnidesk_messages_total", **ch, direction="in") == 2
    assert value(after, "omnidesk_delivery_latency_samples") == 1
    latency = value(after, "omnidesk_delivery_latency_seconds", quantile="0.5")
    assert latency is not None and 0 <= latency < 30


def test_a_channel_in_error_shows(omnidesk: Running, callback: CallbackServer) -> None:
    channel_id, _ = omnidesk.api_channel(callback.url)
    with omnidesk.engine.begin() as conn:  # as workers.poll_channel / deliver record a channel's failure
        conn.execute(update(channels).where(channels.c.id == channel_id)
                     .values(status="error", last_error="401 from the provider", error_count=3))
    samples = scrape(omnidesk)
    assert value(samples, "omnidesk_channel_up", channel=str(channel_id), kind="api") == 0
    assert value(samples, "omnidesk_channel_errors", channel=str(channel_id), kind="api") == 3


def _inbound(engine: Engine, channel_id: int, names: list[str]) -> None:
    record_inbound(engine, channel_id, [InboundMessage(external_id=n, sender=Identity(external_id=n), text=n)
                                        for n in names])


def test_message_totals_count_each_row_once_while_settling(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        channel_id = conn.execute(channels.insert().values(
            kind="api", name="api", config={}, enabled=True, status="ok", error_count=0, created_at=utcnow(),
            updated_at=utcnow()).returning(channels.c.id)).scalar_one()
    totals = MessageTotals(settle=300)
    assert totals.count(store_engine) == {}
    _inbound(store_engine, channel_id, ["a", "b", "c"])
    assert totals.count(store_engine) == {(channel_id, "in"): 3}  # young rows: counted, not settled
    with store_engine.begin() as conn:  # they grow old: the next count settles them
        conn.execute(update(messages).values(created_at=utcnow() - timedelta(hours=1)))
    assert totals.count(store_engine) == {(channel_id, "in"): 3}
    _inbound(store_engine, channel_id, ["d", "e"])
    assert totals.count(store_engine) == {(channel_id, "in"): 5}
    assert totals.count(store_engine) == {(channel_id, "in"): 5}  # settled rows are not counted twice
    assert MessageTotals(settle=0).count(store_engine) == {(channel_id, "in"): 5}


def test_quantile_is_nearest_rank() -> None:
    from web.metrics import quantile

    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.99) == 4.0
    assert quantile([5.0], 0.9) == 5.0
    assert math.isnan(quantile([], 0.5))
