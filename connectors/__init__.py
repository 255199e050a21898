"""Channel connectors: one module a channel, each behind the contract in :mod:`connectors.base`."""

from __future__ import annotations

import importlib

from connectors.base import Connector

# kind -> "module:Class"; imported on first use so a channel's SDK loads only where it is used.
REGISTRY: dict[str, str] = {
    "api": "connectors.api:ApiConnector",
    "email": "connectors.email:EmailConnector",
    "twitter": "connectors.twitter:TwitterConnector",
    "sms": "connectors.twilio:SmsConnector",
    "whatsapp": "connectors.twilio:WhatsAppConnector",
    "telegram": "connectors.telegram:TelegramConnector",
    "webchat": "connectors.webchat:WebchatConnector",
}

# kind -> its capacity group: agents take so many conversations at once of each group (email is
# answered at leisure, chat live, the messaging apps in between). One line per kind, as above; a
# kind missing here counts as "messaging".
CAPACITY_GROUPS: dict[str, str] = {
    "email": "email",
    "webchat": "chat",
    "api": "messaging",
    "sms": "messaging",
    "whatsapp": "messaging",
    "telegram": "messaging",
    "twitter": "messaging",
}
GROUPS: tuple[str, ...] = ("email", "chat", "messaging")
DEFAULT_GROUP = "messaging"


def capacity_group(kind: str) -> str:
    """The capacity group of a channel kind (``CAPACITY_GROUPS``; ``messaging`` when unlisted)."""
    return CAPACITY_GROUPS.get(kind, DEFAULT_GROUP)


def connector_class(kind: str) -> type[Connector]:
    """The connector for a channel kind; KeyError for an unknown kind."""
    module, _, name = REGISTRY[kind].partition(":")
    return getattr(importlib.import_module(module), name)
