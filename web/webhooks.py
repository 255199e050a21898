"""Webhook endpoints: authenticate, parse, store, answer. Nothing slower runs in the request."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from connectors.base import Connector, WebhookRequest
from connectors.errors import AuthError, PayloadError
from store.channels import connector_for, load_channel
from store.db import get_engine
from store.settings import get_settings
from web.intake import intake

router = APIRouter(tags=["webhooks"])

MAX_BODY = 5 * 1024 * 1024
_CACHE_SECONDS = 5.0
_connectors: dict[int, tuple[float, Any, Connector]] = {}


def _connector(channel_id: int) -> Connector:
    """Channel settings change rarely: keep the built connector a few seconds (decrypting and
    validating the settings on every webhook would cost more than storing the message)."""
    cached = _cached(channel_id)
    if cached is not None:
        return cached
    now = time.monotonic()
    channel = load_channel(get_engine(), channel_id)
    if channel is None:
        raise HTTPException(404, f"no channel {channel_id}")
    if not channel.enabled:
        raise HTTPException(403, f"channel {channel_id} is disabled")
    connector = connector_for(channel)
    if not connector.capabilities.push:
        raise HTTPException(404, f"channel {channel_id} ({channel.kind}) takes no webhooks")
    _connectors[channel_id] = (now, channel.updated_at, connector)
    return connector


def _cached(channel_id: int) -> Connector | None:
    cached = _connectors.get(channel_id)
    return cached[2] if cached and time.monotonic() - cached[0] < _CACHE_SECONDS else None


def forget(channel_id: int) -> None:
    _connectors.pop(channel_id, None)


@router.post("/webhooks/{channel_id}", status_code=202)
async def webhook(channel_id: int, request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "body too large")
    public = get_settings().public_url.rstrip("/") + request.url.path
    if request.url.query:
        public += "?" + request.url.query
    hook = WebhookRequest(
        method=request.method,
        url=public,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=body,
    )
    # Loading a connector reads the database: not on the event loop.
    connector = _cached(channel_id) or await run_in_threadpool(_connector, channel_id)
    try:
        events = connector.parse(hook)  # signature and payload checks: pure and quick
    except AuthError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401)
    except PayloadError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    results = await intake.store(channel_id, events) if events else []
    return JSONResponse(
        {"stored": sum(1 for r in results if r.message_id and not r.duplicate),
         "duplicates": sum(1 for r in results if r.duplicate)},
        status_code=202,
    )


@router.post("/demo/callback", status_code=204, include_in_schema=False)
async def demo_callback(request: Request) -> JSONResponse:
    """Where the demo shop's replies go (``omnidesk up --demo``): accepted and logged."""
    import logging

    logging.getLogger("omnidesk.demo").info("reply delivered to the demo shop: %s", (await request.body())[:500])
    return JSONResponse(None, status_code=204)
