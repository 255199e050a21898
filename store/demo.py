"""A demo shop for ``omnidesk up --demo``: three agents online and an API channel whose replies go
to a demo endpoint of omnidesk itself, so the whole loop works with no outside service."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import Engine, select

from store import agents
from store.channels import create_channel
from store.settings import get_settings
from store.sql import channels

DEMO_AGENTS = [
    ("Ana Puig", "ana@demo.shop", ["ca", "es", "en"]),
    ("Jan Kowalski", "jan@demo.shop", ["pl", "en"]),
    ("Rita Sousa", "rita@demo.shop", ["pt", "es", "en"]),
]


def add_demo(engine: Engine, say: Callable[[str], None]) -> None:
    with engine.connect() as conn:
        if conn.execute(select(channels.c.id).where(channels.c.name == "Demo shop")).first():
            return
    for name, email, langs in DEMO_AGENTS:
        _, token = agents.create_agent(engine, name=name, email=email, languages=langs, presence="online")
        say(f"demo agent {name} <{email}> token: {token}")
    secret = secrets.token_urlsafe(24)
    callback = get_settings().public_url.rstrip("/") + "/demo/callback"
    channel_id = create_channel(engine, "api", "Demo shop", {"callback_url": callback, "secret": secret})
    say(f"demo API channel {channel_id}: POST /webhooks/{channel_id} signed with secret {secret}")
