"""Channel kinds for the tests of the sending code: the API channel's real HTTP client under
other declared capabilities, so the deliver job meets a limit, a reply window and a channel whose
receiver cannot tell a repeated send from a new one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

import connectors
from connectors.api import ApiConnector
from connectors.base import Capabilities, Identity, InboundMessage
from store import outbound
from store.channels import create_channel
from store.inbound import record_inbound
from store.sql import messages


class ShortConnector(ApiConnector):
    """Texts up to 20 characters, replies within an hour, and no way to drop a repeat."""

    kind = "short"
    capabilities = Capabilities(push=True, max_text_length=20, reply_window=timedelta(hours=1))


KINDS = {"short": "tests.workers.channels:ShortConnector"}


@pytest.fixture
def extra_kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for kind, where in KINDS.items():
        monkeypatch.setitem(connectors.REGISTRY, kind, where)
    yield


@dataclasses.dataclass
class Conversation:
    engine: Engine
    channel_id: int
    conversation_id: int

    def reply(self, text: str, **kw: Any) -> int:
        return outbound.create_reply(self.engine, self.conversation_id, agent_id=None, text=text, **kw)

    def customer_wrote(self, ago: timedelta) -> None:
        """Move the customer's messages back in time."""
        m = messages.c
        with self.engine.begin() as conn:  # in Python: SQLite has no date arithmetic on columns
            rows = conn.execute(select(m.id, m.created_at).where(m.conversation_id == self.conversation_id,
                                                                 m.direction == "in")).all()
            for row in rows:
                conn.execute(update(messages).where(m.id == row.id).values(created_at=row.created_at - ago))


def conversation(engine: Engine, kind: str, callback_url: str) -> Conversation:
    """A channel of ``kind`` posting replies to ``callback_url``, and a customer who wrote to it."""
    channel_id = create_channel(engine, kind, f"{kind} shop",
                                {"secret": "a-shared-secret-of-the-shop", "callback_url": callback_url})
    hello = InboundMessage(external_id="in-1", sender=Identity("cust-1", name="Customer"), text="hello",
                           thread_key="t1")
    [recorded] = record_inbound(engine, channel_id, [hello])
    assert recorded.conversation_id is not None
    return Conversation(engine, channel_id, recorded.conversation_id)
