"""Fuzzing the HTTP API from its own OpenAPI document (schemathesis): every operation of the
running server, sent with an admin's token, is never answered 5xx. Each operation is fuzzed three
ways: data that fits the schema (ids anywhere in the integers: mostly unknown rows, some past the
database's integers), data that breaks it (negative mode: wrong types, out-of-range values,
missing fields), and data that fits it with the path's ids pinned to rows that exist, so the
bodies reach the handlers' logic rather than a 404.

One test per backend runs every operation and lists every failure, each with the curl line that
replays it. schemathesis is used as a library: its lazy pytest loader does not work with pytest 9
(it sets a node attribute pytest no longer has), and its pytest plugin is switched off in
pyproject.toml (it blanks the values in every hypothesis failure report). The budget: a few
examples per operation and way (``OMNIDESK_FUZZ_EXAMPLES`` multiplies it), a fixed seed, no
example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from sqlalchemy import update

from tests.fuzz.strategies import budget
from tests.support import CallbackServer, Running

# schemathesis' strategies use ``random`` inside, which hypothesis warns of at every example (and
# each warning repeats the case's arguments, our bearer token among them).
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

SEED = 20261128
EXAMPLES = 10  # per operation and way (twice that pinned): ~20 operations x 3 ways


@dataclass
class Target:
    """The server under fuzzing: its schema, and the ids of rows it holds."""

    schema: schemathesis.BaseSchema
    omnidesk: Running
    admin_id: int
    ids: dict[str, int]  # path parameter name -> an existing row's id


@pytest.fixture
def target(omnidesk: Running, callback: CallbackServer) -> Iterator[Target]:
    """The running server's own /openapi.json, called with an admin's bearer token. The server
    holds an API channel, an agent, a team, a conversation with a message and a canned response,
    so that pinned ids hit rows."""
    channel_id, secret = omnidesk.api_channel(callback.url)
    agent = omnidesk.agent("Fuzz Agent")
    omnidesk.ok("POST", "/teams", json={"name": "fuzz"})
    response = omnidesk.post_inbound(channel_id, secret, {"message_id": "m1", "from": {"id": "c1"}, "text": "hi"})
    assert response.status_code == 202, response.text
    conversation = omnidesk.ok("GET", "/conversations")["items"][0]
    message = omnidesk.ok("GET", f"/conversations/{conversation['id']}")["messages"][0]
    canned = omnidesk.ok("POST", "/canned-responses", json={"shortcut": "hi", "title": "Hi", "text": "Hola!"})
    config = SchemathesisConfig(seed=SEED)  # not discovered: no schemathesis.toml is read
    schema = schemathesis.openapi.from_url(f"{omnidesk.url}/openapi.json", config=config)
    schema.config.update(base_url=omnidesk.url, headers={"Authorization": f"Bearer {omnidesk.admin_token}"},
                         request_timeout=30)
    schema.config.generation.update(deterministic=True, database="none")  # the examples: ``budget`` below
    ids = {"channel_id": channel_id, "agent_id": agent["id"], "conversation_id": conversation["id"],
           "message_id": message["id"], "attachment_id": 1, "contact_id": conversation["contact"]["id"],
           "canned_id": canned["id"]}
    yield Target(schema, omnidesk, omnidesk.ok("GET", "/me")["id"], ids)


def keep_admin(target: Target) -> None:
    """Undo what a fuzzed PATCH /agents/{id} may have done to our admin (deactivated, demoted):
    the admin API lets an admin do that, and every later request would then be a mere 401."""
    from store.sql import agents

    with target.omnidesk.engine.begin() as conn:
        conn.execute(update(agents).where(agents.c.id == target.admin_id).values(active=True, role="admin"))


def fuzz(target: Target, operation: schemathesis.APIOperation, way: str) -> str | None:
    """Run one operation's examples one way; the failure (with a curl line to replay it) as
    text, or None."""
    mode = GenerationMode.NEGATIVE if way == "negative" else GenerationMode.POSITIVE
    kwargs: dict[str, Any] = {}
    if way == "pinned":
        names = [p.name for p in operation.iter_parameters() if p.location == "path"]
        if not names or not all(n in target.ids for n in names):
            return None
        kwargs["path_parameters"] = {n: target.ids[n] for n in names}
    touches_agents = operation.method.upper() == "PATCH" and operation.path.startswith("/api/v1/agents/")

    @given(operation.as_strategy(generation_mode=mode, **kwargs))
    @budget(EXAMPLES * (2 if way == "pinned" else 1))  # pinned: where the handlers' logic is
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(checks=[not_a_server_error])
        finally:
            if touches_agents:
                keep_admin(target)

    try:
        run()
    except Unsatisfiable:  # nothing to break (no parameters, no body): nothing to fuzz this way
        return None
    except (Exception, FailureGroup) as exc:  # noqa: BLE001 - every operation is fuzzed; all failures listed
        return f"{operation.label} ({way}): {exc}"
    return None


def test_no_operation_answers_5xx(target: Target) -> None:
    # GET /events is a stream that never ends (its refusals are tested in tests/web/test_events.py).
    operations = [op for op in (result.ok() for result in target.schema.get_all_operations())
                  if op.path != "/api/v1/events"]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # the pinned rows stay for the others
    assert len(operations) >= 15, [op.label for op in operations]  # the document was read whole
    failures = [fuzz(target, op, way) for op in operations for way in ("positive", "negative", "pinned")]
    failures = [f for f in failures if f]
    assert not failures, f"{len(failures)} operations answered 5xx:\n\n" + "\n\n".join(failures)
