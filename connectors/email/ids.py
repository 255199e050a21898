"""omnidesk's own Message-IDs, so replies and bounces can be recognised as answers to us."""

from __future__ import annotations

import re
import secrets

_OWN = re.compile(r"^<?omnidesk\.(\d+)\.[0-9a-f]{12}@[^>]+>?$")


def make_message_id(message_id: int, address: str) -> str:
    """A fresh RFC 5322 Message-ID for outbound message ``message_id`` sent from ``address``."""
    domain = address.rpartition("@")[2] or "omnidesk.invalid"
    return f"<omnidesk.{message_id}.{secrets.token_hex(6)}@{domain}>"


def is_own_message_id(value: str) -> bool:
    return bool(_OWN.match(value.strip()))
