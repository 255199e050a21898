"""A Telegram channel's settings: one bot, its token, and how its updates reach us.

- ``bot_token``: from @BotFather; checked with getMe when the channel is saved.
- ``mode``: ``webhook`` (Telegram posts each update to the channel's webhook URL, which must be
  https for the real service) or ``polling`` (a worker long-polls getUpdates). Left out, it is
  ``webhook`` when ``OMNIDESK_PUBLIC_URL`` is an https URL and ``polling`` otherwise (the embedded
  default, where Telegram cannot reach us); the choice is saved with the channel.
- ``webhook_secret``: the ``secret_token`` given to setWebhook, which Telegram sends back in
  ``X-Telegram-Bot-Api-Secret-Token``; generated when the channel is created, never shown.
- ``api_base_url``: the Bot API server (a local one, or a stand-in in tests).
- ``long_poll_timeout``: seconds one getUpdates call waits for an update (polling mode).
- ``send_rate``: messages a second the bot may send over all its chats (Telegram: about 30);
  each chat gets at most one a second.
- ``bot_name`` / ``bot_username``: filled in from getMe when the channel is checked, for the admin.
"""

from __future__ import annotations

import os
import secrets
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from connectors.base import ChannelConfig

Mode = Literal["webhook", "polling"]


def default_mode() -> Mode:
    # Connectors do not read omnidesk's settings (store.settings); the public URL is the one
    # environment variable whose meaning every process shares, and its default is http.
    public = os.environ.get("OMNIDESK_PUBLIC_URL", "http://localhost:8000")
    return "webhook" if public.lower().startswith("https://") else "polling"


def new_secret() -> SecretStr:
    # Telegram takes 1-256 characters of A-Z, a-z, 0-9, _ and -: token_urlsafe's alphabet.
    return SecretStr(secrets.token_urlsafe(32))


class TelegramConfig(ChannelConfig):
    bot_token: SecretStr
    mode: Mode = Field(default_factory=default_mode)
    api_base_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://", max_length=500)
    webhook_secret: SecretStr = Field(default_factory=new_secret)
    long_poll_timeout: int = Field(default=25, ge=0, le=50)
    send_rate: float = Field(default=30.0, gt=0, le=30)
    timeout: float = Field(default=15.0, gt=0, le=120)
    bot_name: str | None = Field(default=None, max_length=200)
    bot_username: str | None = Field(default=None, max_length=200)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        bot_id, _, key = token.partition(":")
        if not (bot_id.isdigit() and key and all(c.isalnum() or c in "_-" for c in key)):
            raise ValueError("is not a bot token (<bot id>:<key>, as @BotFather gives it)")
        return SecretStr(token)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if not (1 <= len(secret) <= 256 and all(c.isalnum() or c in "_-" for c in secret)):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def bot_id(self) -> str:
        return self.bot_token.get_secret_value().partition(":")[0]

    @property
    def api_url(self) -> str:
        return self.api_base_url.rstrip("/")
