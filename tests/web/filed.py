"""A channel kind for tests that can send files: the API channel declaring ``supports_attachments``."""

from __future__ import annotations

from connectors.api import ApiConnector
from connectors.base import Capabilities


class FiledConnector(ApiConnector):
    kind = "filed"
    capabilities = Capabilities(push=True, repeat_safe=True, supports_attachments=True)
