"""An X (Twitter) channel's settings: the shop's account, read and written through API v2.

The keys of ../shared/API.md (``consumer_key``, ``consumer_secret``, ``access_token``,
``access_token_secret``, ``bearer_token``, ``user_id``, ``api_base_url``) plus:

- ``webhooks``: the channel also takes Account Activity webhooks (CRC answered, signatures
  checked); polling goes on as the fallback, at ``poll_interval``;
- ``mentions`` / ``direct_messages``: which of the two the channel imports (both by default);
- ``import_since_days``: how far back a new channel imports mentions and DMs (7; None: all X
  keeps, 30 days of DMs), so connecting an account does not open a conversation per old mention;
- ``poll_interval``: seconds between polls (X allows 450 mention reads / 15 min per app, 15 DM
  reads / 15 min per user: a minute apart stays well inside both);
- ``timeout``: seconds for any call to X.

DMs and sending need OAuth 1.0a user context (the consumer pair and the account's access pair);
mentions are read with the app's ``bearer_token`` when given, else with user context.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from connectors.base import ChannelConfig

DEFAULT_API = "https://api.twitter.com"


class TwitterConfig(ChannelConfig):
    consumer_key: str = Field(min_length=1, max_length=200)
    consumer_secret: SecretStr = Field(min_length=1)
    access_token: str = Field(min_length=1, max_length=200)
    access_token_secret: SecretStr = Field(min_length=1)
    bearer_token: SecretStr | None = None
    user_id: str = Field(pattern=r"^[0-9]{1,20}$")
    api_base_url: str = Field(default=DEFAULT_API, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$", max_length=500)
    webhooks: bool = False
    mentions: bool = True
    direct_messages: bool = True
    import_since_days: int | None = Field(default=7, ge=0, le=30)
    poll_interval: float = Field(default=60.0, ge=1, le=3600)
    timeout: float = Field(default=20.0, gt=0, le=120)

    @field_validator("api_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
