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
}


def connector_class(kind: str) -> type[Connector]:
    """The connector for a channel kind; KeyError for an unknown kind."""
    module, _, name = REGISTRY[kind].partition(":")
    return getattr(importlib.import_module(module), name)
