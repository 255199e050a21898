"""A channel kind for tests that needs its webhook registered: the API channel plus a
``webhook_setup`` that records the URL (or refuses it, as a provider would, when configured to)."""

from __future__ import annotations

from connectors.api import ApiConfig, ApiConnector
from connectors.errors import ConfigError

calls: list[tuple[str, str | None]] = []


class HookedConfig(ApiConfig):
    refuse: str | None = None  # the provider refuses the webhook with this reason


class HookedConnector(ApiConnector):
    kind = "hooked"
    Config = HookedConfig
    config: HookedConfig

    def check(self) -> None:
        calls.append(("check", None))

    def webhook_setup(self, url: str) -> None:
        calls.append(("webhook_setup", url))
        if self.config.refuse:
            raise ConfigError(f"the provider refused the webhook: {self.config.refuse}")
