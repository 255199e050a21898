"""Webhook endpoints: authenticate, parse, store, answer. Nothing slower runs in the request.

``serve`` is the endpoint as plain ASGI, which ``web.app.App`` hands webhook posts to (see
``web.asgi``); the FastAPI route below documents it in the OpenAPI schema and serves it under a
root path. Both go through ``handle``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from connectors.base import Connector, WebhookAnswer, WebhookRequest
from connectors.errors import AuthError, PayloadError, UnsupportedEvent
from router import opening
from store.channels import connector_for, load_channel
from store.db import get_engine
from store.models import MAX_ID
from store.settings import get_settings
from web import asgi
from web.intake import intake

log = logging.getLogger("omnidesk.web.webhooks")
router = APIRouter(tags=["webhooks"])

MAX_BODY = 5 * 1024 * 1024
_CACHE_SECONDS = 5.0
_connectors: dict[int, tuple[float, Any, Connector]] = {}


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _connector(channel_id: int) -> Connector:
    """Channel settings change rarely: keep the built connector a few seconds (decrypting and
    validating the settings on every webhook would cost more than storing the message)."""
    cached = _cached(channel_id)
    if cached is not None:
        return cached
    now = time.monotonic()
    channel = load_channel(get_engine(), channel_id)
    if channel is None:
        raise _Refused(404, f"no channel {channel_id}")
    if not channel.enabled:
        raise _Refused(403, f"channel {channel_id} is disabled")
    connector = connector_for(channel)
    if not connector.capabilities.push:
        raise _Refused(404, f"channel {channel_id} ({channel.kind}) takes no webhooks")
    _connectors[channel_id] = (now, channel.updated_at, connector)
    return connector


def _cached(channel_id: int) -> Connector | None:
    cached = _connectors.get(channel_id)
    return cached[2] if cached and time.monotonic() - cached[0] < _CACHE_SECONDS else None


def forget(channel_id: int) -> None:
    _connectors.pop(channel_id, None)


async def serve(channel_id: int, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
    """``POST /webhooks/{channel_id}[/{route}]`` (and ``GET``, a provider's challenge) as plain ASGI."""
    try:
        body = await asgi.read_body(receive, MAX_BODY)
        answer = await handle(channel_id, scope["path"], scope["query_string"].decode("latin-1"),
                              asgi.headers(scope), body, method=scope["method"])
    except asgi.BodyTooLarge:
        answer = _json(413, {"detail": "body too large"})
    except Exception:
        log.exception("%s %s failed", scope["method"], scope["path"])
        answer = _json(500, {"detail": "internal error; it has been logged"})
    await asgi.send_body(send, answer.status, answer.body, answer.content_type)


def _json(status: int, content: dict[str, Any]) -> WebhookAnswer:
    return WebhookAnswer(json.dumps(content, separators=(",", ":")).encode(), status=status)


async def handle(channel_id: int, path: str, query: str, headers: Mapping[str, str], body: bytes,
                 *, method: str = "POST") -> WebhookAnswer:
    """One webhook: the answer to send. ``headers``: names lower-case. Our JSON unless the
    connector names the body its provider expects (:meth:`Connector.answer`)."""
    if not 0 < channel_id <= MAX_ID:  # no such row, and past what the database takes
        return _json(404, {"detail": f"no channel {channel_id}"})
    if len(body) > MAX_BODY:
        return _json(413, {"detail": "body too large"})
    public = get_settings().public_url.rstrip("/") + path
    if query:
        public += "?" + query
    hook = WebhookRequest(method=method, url=public, headers=headers,
                          query=dict(parse_qsl(query, keep_blank_values=True)), body=body,
                          route=asgi.webhook_route(path), open_now=lambda: opening.open_now(get_engine(), None))
    try:
        # Loading a connector reads the database: not on the event loop.
        connector = _cached(channel_id) or await run_in_threadpool(_connector, channel_id)
    except _Refused as exc:
        return _json(exc.status, {"detail": exc.detail})
    try:
        events = connector.parse(hook)  # signature and payload checks: pure and quick
    except AuthError as exc:
        return _json(exc.status, {"detail": str(exc)})
    except PayloadError as exc:
        return _json(400, {"detail": str(exc)})
    except RecursionError:  # a body nested too deep for any parser: the sender's fault, not ours
        return _json(400, {"detail": "invalid message: nested too deep"})
    except UnsupportedEvent as exc:  # authenticated, just not used: 200 so the provider stops
        return connector.answer(hook) or _json(200, {"ignored": str(exc)})
    results = await intake.store(channel_id, events) if events else []
    return connector.answer(hook) or _json(202, {
        "stored": sum(1 for r in results if r.message_id and not r.duplicate),
        "duplicates": sum(1 for r in results if r.duplicate)})


@router.post("/webhooks/{channel_id}", status_code=202)
async def webhook(channel_id: int, request: Request) -> Response:
    """A channel's webhook: the provider's request, verified by the channel's connector (for the
    API channel: HMAC-SHA256 of the body in ``X-Omnidesk-Signature``), its messages stored once.
    202 once stored; 200 an authenticated event the channel does not use (ignored); 401 bad
    signature; 400 malformed payload; 403 channel disabled; 404 no such channel; 413 body over 5 MiB.
    Providers that expect a body of their own (Twilio's TwiML) get it instead of this JSON."""
    return await _via_framework(channel_id, request)


@router.post("/webhooks/{channel_id}/{route}", status_code=202)
async def webhook_route(channel_id: int, route: str, request: Request) -> Response:
    """A channel's other webhooks, e.g. Twilio's delivery receipts (``status``) and calls (``voice``)."""
    return await _via_framework(channel_id, request)


@router.get("/webhooks/{channel_id}")
async def webhook_challenge(channel_id: int, request: Request) -> Response:
    """A provider's challenge (X's CRC check), answered by the channel's connector."""
    return await _via_framework(channel_id, request)


async def _via_framework(channel_id: int, request: Request) -> Response:
    answer = await handle(channel_id, request.url.path, request.url.query,
                          {k.lower(): v for k, v in request.headers.items()}, await request.body(),
                          method=request.method)
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
