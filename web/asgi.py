"""The little of ASGI a webhook needs, without the framework around it.

Webhooks are the one hot path of the HTTP surface: every customer message comes through one, and
the provider waits for its answer. Routing, dependency injection and the middleware stack of the
framework cost more CPU than the rest of the request (reading, verifying and storing it), so the
app hands ``POST /webhooks/{channel_id}`` to a plain ASGI handler (see ``web.app.App``) and serves
everything else, the API and its docs, with FastAPI as usual.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# long ids too: the handler answers 404 past the largest
_WEBHOOK = re.compile(r"/webhooks/(\d{1,30})(?:/([a-z][a-z0-9_-]{0,30}))?")


class BodyTooLarge(Exception):
    pass


def webhook_channel(scope: Scope) -> int | None:
    """The channel id of a webhook (``POST /webhooks/{int}`` or ``/webhooks/{int}/{route}``, or a
    GET of either, a provider's challenge), else None."""
    if scope["type"] != "http" or scope["method"] not in ("POST", "GET"):
        return None
    match = _WEBHOOK.fullmatch(scope["path"])
    return int(match.group(1)) if match else None


def webhook_route(path: str) -> str:
    """The part of a webhook path after ``/webhooks/{id}/`` ("" for none)."""
    match = _WEBHOOK.fullmatch(path)
    return (match.group(2) or "") if match else ""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request's body; BodyTooLarge past ``limit`` bytes (stops reading there)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names lower-case (as ASGI gives them), values decoded as latin-1;
    a repeated header keeps its last value."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def send_json(send: Send, status: int, content: Any) -> None:
    await send_body(send, status, json.dumps(content, separators=(",", ":")).encode())


async def send_body(send: Send, status: int, body: bytes, content_type: str = "application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode("latin-1")),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
