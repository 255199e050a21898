"""The connector contract as the workers use it: every registered channel loads behind it, and
the poll interval is the channel's own setting where it has one, else its kind's default."""

from __future__ import annotations

import pytest

from connectors import REGISTRY, connector_class
from connectors.api import ApiConfig, ApiConnector
from connectors.base import Capabilities, ChannelConfig, Connector
from connectors.email import EmailConnector
from connectors.email.config import EmailConfig


OWN_ENDPOINTS = {"webchat"}


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_registered_channel_implements_the_contract(kind: str) -> None:
    cls = connector_class(kind)
    assert issubclass(cls, Connector) and cls.kind == kind
    assert issubclass(cls.Config, ChannelConfig)
    caps = cls.capabilities
    # Messages come in by webhooks (push) or polling (pull); the web chat's through omnidesk's own
    # widget endpoints (web/webchat.py), which build them with its connector.
    assert isinstance(caps, Capabilities) and (caps.push or caps.pull or kind in OWN_ENDPOINTS)
    assert cls.send is not Connector.send  # every channel answers its customers
    if caps.push:
        assert cls.parse is not Connector.parse
    if caps.pull:
        assert cls.poll is not Connector.poll
    if caps.watch:
        assert caps.pull and cls.watch is not Connector.watch


def test_the_poll_interval_is_the_channels_own_setting_else_the_kinds_default() -> None:
    api = ApiConnector(ApiConfig(secret="s" * 16, callback_url="http://127.0.0.1:9/"))
    assert api.poll_interval == Capabilities().poll_interval  # no setting: the default
    values = {"address": "desk@shop.test", "imap_host": "127.0.0.1", "smtp_host": "127.0.0.1",
              "imap_username": "desk", "imap_password": "pw", "smtp_username": "desk", "smtp_password": "pw"}
    assert EmailConnector(EmailConfig.model_validate(values)).poll_interval == 60.0
    fast = EmailConfig.model_validate({**values, "poll_interval": 7})
    assert EmailConnector(fast).poll_interval == 7.0
