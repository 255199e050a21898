"""The inbox's conversation list and counts at the size issue 11 names: 200,000 conversations and
1,000,000 messages on PostgreSQL, 50 agents in 5 teams.

Measures ``GET /api/v1/conversations`` (views all, mine, unassigned, a team; an admin and a team
agent), ``GET /api/v1/conversations/counts``, through the app in this process (FastAPI's test
client: the whole request path but the socket), against a baseline in the same run: the list's
query alone as it was before the inbox's additions (``store.conversations.list_visible``, no unread,
preview or reply window). Prints a table, then one line of JSON.

    .venv/bin/python -m bench.inbox_list [--conversations 200000] [--messages-each 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_PG, emit, percentile, print_table, scratch_database, use_database  # noqa: E402

SEED = """
INSERT INTO channels (kind, name, config, enabled, status, error_count, created_at, updated_at)
    VALUES ('api', 'Shop', '{{}}', true, 'ok', 0, now(), now());
INSERT INTO teams (name) SELECT 'team ' || g FROM generate_series(1, 5) g;
INSERT INTO agents (name, email, role, presence, capacity, active_count, active, created_at, locale)
    SELECT 'Agent ' || g, 'agent' || g || '@shop.test', CASE WHEN g = 1 THEN 'admin' ELSE 'agent' END,
           'online', 50, 0, true, now(), 'en' FROM generate_series(1, 50) g;
INSERT INTO agent_teams (agent_id, team_id) SELECT g, 1 + g % 5 FROM generate_series(2, 50) g;
INSERT INTO contacts (name, email, created_at)
    SELECT 'Customer ' || g, 'c' || g || '@example.com', now() FROM generate_series(1, {contacts}) g;
INSERT INTO conversations (channel_id, contact_id, status, assignee_id, team_id, priority, needs_routing,
                           route_attempts, waiting_since, last_message_at, created_at, updated_at)
    SELECT 1, 1 + g % {contacts},
           CASE WHEN g % 20 < 2 THEN 'open' WHEN g % 20 = 2 THEN 'pending' WHEN g % 20 = 3 THEN 'snoozed'
                ELSE 'resolved' END,
           CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % 50 END,
           CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 5 END,
           0, false, 0, now() - (g || ' seconds')::interval, now(), now() - (g || ' seconds')::interval, now()
    FROM generate_series(1, {conversations}) g;
INSERT INTO messages (conversation_id, channel_id, direction, text, private, automatic, status, attempts,
                      external_id, created_at)
    SELECT 1 + (g - 1) / {each}, 1, CASE WHEN g % 2 = 1 THEN 'in' ELSE 'out' END,
           'Hola, on es la meva comanda numero ' || g || '? ' || repeat('Gracies per tot. ', 20), false, false,
           CASE WHEN g % 2 = 1 THEN 'received' ELSE 'sent' END, 0, 'x' || g, now()
    FROM generate_series(1, {messages}) g;
INSERT INTO conversation_reads (agent_id, conversation_id, last_read_message_id)
    SELECT 1 + g % 50, g, g * {each} - 2 FROM generate_series(1, {conversations}, 2) g;
"""


def _timed(call: Any, count: int) -> list[float]:
    took = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        took.append((time.perf_counter() - began) * 1000)
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=200_000)
    parser.add_argument("--messages-each", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200, help="timed requests a case")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database (its name is printed)")
    args = parser.parse_args(argv)
    conversations, each = args.conversations, args.messages_each
    with scratch_database(args.pg, keep=args.keep) as url:
        use_database(url)
        from fastapi.testclient import TestClient
        from sqlalchemy import text

        from store import conversations as store_conversations
        from store.agents import issue_token
        from store.db import get_engine, upgrade
        from web.app import create_app

        upgrade(url)
        engine = get_engine()
        began = time.monotonic()
        with engine.begin() as conn:
            for statement in SEED.format(contacts=conversations // 2, conversations=conversations, each=each,
                                         messages=conversations * each).split(";\n"):
                if statement.strip():
                    conn.execute(text(statement))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # as autovacuum leaves a settled table: visibility map set
        seeded = time.monotonic() - began
        admin, agent = issue_token(engine, 1), issue_token(engine, 7)
        client = TestClient(create_app())
        client.__enter__()  # one event loop for every request (else each starts a thread of its own)
        cases = [
            ("admin, all", admin, "/api/v1/conversations"),
            ("admin, open", admin, "/api/v1/conversations?status=open"),
            ("agent, all", agent, "/api/v1/conversations"),
            ("agent, mine", agent, "/api/v1/conversations?view=mine"),
            ("agent, unassigned", agent, "/api/v1/conversations?view=unassigned"),
            ("agent, their team, open", agent, "/api/v1/conversations?team_id=3&status=open"),
            ("admin, counts", admin, "/api/v1/conversations/counts"),
            ("agent, counts", agent, "/api/v1/conversations/counts"),
        ]
        rows, lists, counts = [], [], []
        for name, token, path in cases:
            headers = {"Authorization": f"Bearer {token}"}
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, answer.text
            took = _timed(lambda p=path, h=headers: client.get(p, headers=h), args.requests)
            (counts if "counts" in name else lists).extend(took)
            rows.append((name, f"{percentile(took, 50):.1f}", f"{percentile(took, 95):.1f}"))
        filters = store_conversations.Filters()
        baseline = _timed(lambda: store_conversations.list_visible(engine, 7, admin=False, filters=filters, limit=50),
                          args.requests)
        baseline += _timed(lambda: store_conversations.list_visible(engine, 1, admin=True, filters=filters,
                                                                    limit=50), args.requests)
        rows.append(("baseline: the list query alone", f"{percentile(baseline, 50):.1f}",
                     f"{percentile(baseline, 95):.1f}"))
        print_table(f"{conversations:,} conversations, {conversations * each:,} messages (seeded in {seeded:.0f} s)",
                    [("case", "p50 ms", "p95 ms"), *rows])
        p95 = percentile(lists, 95)
        emit({"bench": "inbox_list", "conversations": conversations, "messages": conversations * each,
              "requests": args.requests, "p95_list_ms": round(p95, 1),
              "p95_counts_ms": round(percentile(counts, 95), 1),
              "baseline_p95_list_query_ms": round(percentile(baseline, 95), 1), "target_met": p95 < 100})
        client.__exit__(None, None, None)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
