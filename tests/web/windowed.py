"""A channel kind for tests with a reply window (as WhatsApp's 24 hours): the API channel whose
replies are accepted only within a minute of the customer's last message."""

from __future__ import annotations

from datetime import timedelta

from connectors.api import ApiConnector
from connectors.base import Capabilities


class WindowedConnector(ApiConnector):
    kind = "windowed"
    capabilities = Capabilities(push=True, reply_window=timedelta(minutes=1))
