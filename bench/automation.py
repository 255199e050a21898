"""What the automations before assignment cost the routing job: language detection and rules.

    .venv/bin/python -m bench.automation [--conversations 1000] [--batch 200]

A scratch PostgreSQL database holds a shop's channel, 20 online agents who speak all 8 languages
(room for everyone; every fourth has the skill "billing", which a rule asks for), 5 routing rules, and two sets of new conversations, each opened by one short
customer message from bench/language_messages.tsv. One set is routed as the routing job routes
(``router.route.route_conversations``: automations, then the assignment), the other, the
baseline in the same run, by the assignment alone (``store.assignment_batch.assign_batch``), in
batches taken in turn from each. Reported: milliseconds per conversation each way and the
automations' share; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import random
import time

from bench.common import emit, print_table, scratch_database, use_database
from bench.language import load

RULES = [
    ("Refunds", [{"type": "words", "any": ["refund", "reembolso", "reemborsament", "Erstattung", "rimborso"]}],
     [{"type": "set_priority", "value": "high"}, {"type": "add_tag", "value": "refund"}]),
    ("Invoices", [{"type": "words", "any": ["invoice", "factura", "fatura", "Rechnung", "facture", "fattura",
                                            "faktura"]}],
     [{"type": "add_skill", "value": "billing"}]),
    ("B2B", [{"type": "contact", "attribute": "email_domain", "equals": "bigco.example"}],
     [{"type": "set_priority", "value": "urgent"}]),
    ("Catalan", [{"type": "language", "in": ["ca"]}], [{"type": "add_tag", "value": "ca"}]),
    ("After hours", [{"type": "business_hours", "is": "closed"}], [{"type": "add_tag", "value": "after-hours"}]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000, help="per set")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    with scratch_database() as url:
        use_database(url)
        result = run(args.conversations, args.batch)
    emit(result)


def run(count: int, batch: int) -> dict[str, object]:
    from connectors.base import Identity, InboundMessage
    from router.language import DEFAULT_LANGUAGES, detector
    from router.route import decider, route_conversations
    from store import agents as agent_store
    from store import rules as rule_store
    from store.assignment_batch import assign_batch
    from store.db import get_engine, upgrade
    from store.inbound import record_inbound
    from store.models import utcnow
    from store.settings import get_settings
    from store.sql import channels

    upgrade()
    engine = get_engine()
    for n in range(20):
        agent_store.create_agent(engine, name=f"Agent {n}", email=f"a{n}@shop.test", capacity=10 * count,
                                 languages=DEFAULT_LANGUAGES, presence="online",
                                 skills=["billing"] if n % 4 == 0 else None)  # the Invoices rule asks for it
    for name, conditions, actions in RULES:
        rule_store.create_rule(engine, name=name, conditions=conditions, actions=actions)
    texts = [text for _, text in load()]
    rng = random.Random(15)
    sets: dict[str, list[int]] = {}
    for label in ("automated", "baseline"):
        with engine.begin() as conn:
            channel_id = conn.execute(channels.insert().values(
                kind="api", name=label, config={}, enabled=True, status="ok", error_count=0, created_at=utcnow(),
                updated_at=utcnow()).returning(channels.c.id)).scalar_one()
        ids: list[int] = []
        for start in range(0, count, 500):
            msgs = [InboundMessage(external_id=f"{label}-{n}", text=rng.choice(texts), thread_key=f"{label}-{n}",
                                   sender=Identity(f"{label}-{n}", email=f"c{n}@{rng.choice(['bigco', 'x'])}.example"))
                    for n in range(start, min(count, start + 500))]
            ids.extend(r.conversation_id for r in record_inbound(engine, channel_id, msgs))  # type: ignore[misc]
        sets[label] = ids
    detector(get_settings().language_codes()).compute_language_confidence_values("warm up")  # once a process
    spent = {"automated": 0.0, "baseline": 0.0}
    decide = decider()
    for start in range(0, count, batch):
        for label in ("baseline", "automated"):
            chunk = sets[label][start:start + batch]
            began = time.perf_counter()
            if label == "automated":
                outcomes = route_conversations(engine, chunk)
            else:
                outcomes = assign_batch(engine, chunk, decide)
            spent[label] += time.perf_counter() - began
            assert all(o.agent_id is not None for o in outcomes), label
    per = {label: spent[label] / count * 1000 for label in spent}
    print_table(f"{count} conversations a set, batches of {batch}, PostgreSQL", [
        ("routing", "ms/conversation", "seconds"),
        ("assignment alone (baseline)", per["baseline"], spent["baseline"]),
        ("automations + assignment", per["automated"], spent["automated"]),
    ])
    return {"bench": "automation", "conversations": count, "batch": batch,
            "ms_per_conversation": round(per["automated"], 3), "baseline_ms_per_conversation": round(per["baseline"], 3),
            "automation_ms_per_conversation": round(per["automated"] - per["baseline"], 3),
            "ratio_to_baseline": round(per["automated"] / per["baseline"], 2)}


if __name__ == "__main__":
    main()
