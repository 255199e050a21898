"""The web chat widget's endpoints, under ``/webchat/{channel_id}/``, and ``/widget.js``.

Every request names its channel; its ``Origin`` must be one of the channel's ``allowed_origins``
(a same-origin GET, which browsers send without one, counts as omnidesk's own origin), else 403.
CORS is answered for allowed origins only. The visitor's token (``session``) travels in the
``X-Omnidesk-Visitor`` header, or as ``?token=`` where a browser cannot set headers (the event
stream, a file's link). Writes are rate-limited per visitor and per client address (429).

- ``POST session``: a visitor token (a new anonymous visitor, the one given back, or the verified
  customer ``identity`` = {id, email, name, hash}), the channel's look and whether someone is there.
- ``GET messages?after=``: the visitor's messages (public, this channel's) after a message id.
- ``POST messages``: {id (made in the browser: the external id), text, files: [{filename,
  content_type, data (base64)}]}: stored once whatever the number of resends.
- ``POST typing``, ``POST read`` {up_to}, ``POST email`` {email}.
- ``GET files/{id}``: one file of the visitor's conversation.
- ``GET events``: the visitor's own event stream (SSE, resumable like the agents'): only their
  conversations' public message events, status moves (read receipts) and typing
  (``web.webchat_stream``).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from connectors.base import Attachment, Identity
from connectors.errors import AuthError, ConfigError, PayloadError
from connectors.webchat import WebchatConnector, origin_allowed, read_token, verify_identity, visitor_token
from router.availability import someone_there_now
from store import visitors
from store.channels import connector_for, load_channel
from store.db import get_engine
from store.models import MAX_ID
from store.settings import get_settings, secret_key
from web.intake import intake

# The widget's own protocol (this module's docstring, README): not part of the documented agent API.
router = APIRouter(tags=["webchat"], include_in_schema=False)
WIDGET = Path(__file__).resolve().parent / "ui" / "widget" / "widget.js"
MAX_BODY = 40 * 1024 * 1024  # base64 of the largest attachments allowed
TOKEN_HEADER = "x-omnidesk-visitor"
_CACHE_SECONDS = 5.0


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


# ---- the channel, its origin, the visitor ----

_channels: dict[tuple[int, int], tuple[float, WebchatConnector]] = {}


def _load(channel_id: int) -> WebchatConnector:
    """The channel's connector, kept a few seconds (settings change rarely; a change applies then)."""
    key = (id(get_engine()), channel_id)
    cached = _channels.get(key)
    if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
        return cached[1]
    channel = load_channel(get_engine(), channel_id) if 0 < channel_id <= MAX_ID else None
    if channel is None or channel.kind != WebchatConnector.kind:
        raise Refused(404, f"no web chat channel {channel_id}")
    if not channel.enabled:
        raise Refused(403, f"channel {channel_id} is disabled")
    connector = connector_for(channel)
    assert isinstance(connector, WebchatConnector)
    _channels[key] = (time.monotonic(), connector)
    return connector


def request_origin(request: Request) -> str | None:
    """The page's origin: the Origin header, or omnidesk's own for a same-origin GET without one."""
    origin = request.headers.get("origin")
    if origin:
        return origin
    if request.headers.get("sec-fetch-site") == "same-origin":
        public = get_settings().public_url.rstrip("/")
        return "/".join(public.split("/")[:3])
    return None


def cors(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
            "Access-Control-Allow-Headers": "Content-Type, X-Omnidesk-Visitor, Last-Event-ID",
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Max-Age": "600"}


async def channel_for(request: Request, channel_id: int) -> tuple[WebchatConnector, dict[str, str]]:
    """The channel, once the request's origin is one it allows; and the CORS headers to answer with."""
    cached = _channels.get((id(get_engine()), channel_id))
    if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
        connector = cached[1]
    else:  # reading the channel's settings: not on the event loop
        connector = await run_in_threadpool(_load, channel_id)
    origin = request_origin(request)
    if not origin_allowed(connector.config, origin):
        raise Refused(403, "this page's origin may not use this chat")
    return connector, cors(origin or "")


def visitor_of(channel_id: int, token: str | None) -> str:
    try:
        return read_token(secret_key(), channel_id, token or "")
    except AuthError as exc:
        raise Refused(401, str(exc)) from None


class Limiter:
    """Requests allowed per key within a sliding window (one web process's count)."""

    def __init__(self) -> None:
        self._seen: dict[str, collections.deque[float]] = {}

    def check(self, key: str, limit: int, window: float = 60.0) -> None:
        now = time.monotonic()
        seen = self._seen.setdefault(key, collections.deque())
        while seen and seen[0] <= now - window:
            seen.popleft()
        if len(seen) >= limit:
            raise Refused(429, "too many requests; try again shortly",
                          {"Retry-After": str(max(1, int(seen[0] + window - now) + 1))})
        seen.append(now)
        if len(self._seen) > 100_000:  # forget the quiet ones
            for name in [k for k, v in self._seen.items() if not v or v[-1] <= now - window]:
                del self._seen[name]


limiter = Limiter()


def limit(request: Request, channel_id: int, visitor: str | None) -> None:
    settings = get_settings()
    ip = request.client.host if request.client else "unknown"
    limiter.check(f"ip:{ip}", settings.webchat_ip_rate)
    if visitor is not None:
        limiter.check(f"v:{channel_id}:{visitor}", settings.webchat_visitor_rate)


def _answer(status: int, content: Any, headers: dict[str, str]) -> Response:
    return JSONResponse(content, status_code=status, headers=headers)


async def guarded(request: Request, channel_id: int, work: Any) -> Response:
    headers: dict[str, str] = {}
    try:
        connector, headers = await channel_for(request, channel_id)
        return await work(connector, headers)
    except Refused as exc:
        return _answer(exc.status, {"detail": exc.detail}, {**headers, **exc.headers})
    except (PayloadError, ConfigError) as exc:
        return _answer(422, {"detail": str(exc)}, headers)


async def as_visitor(request: Request, channel_id: int, token: str | None, work: Any, *,
                     limited: bool = True) -> Response:
    """:func:`guarded` for a visitor's own request: ``work(connector, headers, visitor)`` once the
    visitor's token is read (401 if it is not the channel's) and, when ``limited``, the rate
    limits per IP and per visitor allow it (429)."""
    async def checked(connector: WebchatConnector, headers: dict[str, str]) -> Response:
        visitor = visitor_of(channel_id, token)
        if limited:
            limit(request, channel_id, visitor)
        return await work(connector, headers, visitor)
    return await guarded(request, channel_id, checked)


async def _body(request: Request, model: type[BaseModel]) -> Any:
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise Refused(413, "body too large")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Refused(413, "body too large")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValueError as exc:
        raise PayloadError(str(exc).splitlines()[0] if str(exc) else "invalid body") from None


# ---- endpoints ----

class IdentityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=300)
    hash: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=300)


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str | None = Field(default=None, max_length=1000)
    identity: IdentityIn | None = None


class FileIn(BaseModel):
    filename: str = Field(min_length=1, max_length=300)
    content_type: str = Field(min_length=1, max_length=200)
    data: str  # base64


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=20_000)
    files: list[FileIn] = Field(default_factory=list, max_length=5)
    language: str | None = Field(default=None, max_length=10)


class ReadIn(BaseModel):
    up_to: int = Field(ge=0, le=2**31 - 1)


class EmailIn(BaseModel):
    email: str = Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$", max_length=320)
    name: str | None = Field(default=None, max_length=300)


# Verified visitors' names and emails, as the shop gave them, and the emails visitors left (read at
# their session): what their first message's contact is made with. This process's memory only: the
# email left is also kept on the visitor's row and their contact (store.visitors.leave_email).
_known: dict[tuple[int, str], Identity] = {}
_emails: dict[tuple[int, str], str] = {}


@router.options("/webchat/{channel_id}/{rest:path}", include_in_schema=False)
async def preflight(channel_id: int, rest: str, request: Request) -> Response:
    return await guarded(request, channel_id, lambda _c, headers: _none(headers))


async def _none(headers: dict[str, str]) -> Response:
    return Response(status_code=204, headers=headers)


@router.post("/webchat/{channel_id}/session")
async def session(channel_id: int, request: Request) -> Response:
    """A visitor token and what the widget shows (colour, greeting, whether someone is there)."""
    async def work(connector: WebchatConnector, headers: dict[str, str]) -> Response:
        limit(request, channel_id, None)
        body = await _body(request, SessionIn)
        if body.identity is not None:
            try:
                verify_identity(connector.config, body.identity.id, body.identity.hash)
            except AuthError as exc:
                raise Refused(401, str(exc)) from None
            visitor = "u:" + body.identity.id
            _known[(channel_id, visitor)] = Identity(visitor, name=body.identity.name, email=body.identity.email)
        else:
            visitor = None
            if body.token:
                with contextlib.suppress(Refused):
                    visitor = visitor_of(channel_id, body.token)
            if visitor is None or visitor.startswith("u:"):  # a signed-in customer's chat needs their hash
                visitor = "v:" + secrets.token_urlsafe(16)
        config = connector.config
        there, email = await run_in_threadpool(_start, channel_id, visitor, config.team_id)
        if email:
            _emails[(channel_id, visitor)] = email
        return _answer(200, {"token": visitor_token(secret_key(), channel_id, visitor), "verified": visitor.startswith("u:"),
                             "colour": config.colour, "greeting": config.greeting, "pre_chat_form": config.pre_chat_form,
                             "someone_there": there, "email": email,
                             "max_attachment_bytes": config.max_attachment_bytes}, headers)
    return await guarded(request, channel_id, work)


def _start(channel_id: int, visitor: str, team_id: int | None) -> tuple[bool, str | None]:
    visitors.ensure(get_engine(), channel_id, visitor)
    return someone_there_now(get_engine(), team_id), visitors.email_of(get_engine(), channel_id, visitor)


@router.get("/webchat/{channel_id}/messages")
async def list_messages(channel_id: int, request: Request, after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                        x_omnidesk_visitor: Annotated[str | None, Header()] = None) -> Response:
    """The visitor's messages after message ``after``, oldest first (at most 200)."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        items = await run_in_threadpool(visitors.shown_messages, get_engine(), channel_id, visitor, after)
        return _answer(200, {"items": items}, headers)
    return await as_visitor(request, channel_id, x_omnidesk_visitor, work, limited=False)


@router.post("/webchat/{channel_id}/messages")
async def send_message(channel_id: int, request: Request,
                       x_omnidesk_visitor: Annotated[str | None, Header()] = None) -> Response:
    """A visitor's message: 202 once stored (a resend of the same ``id`` is stored once)."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        body = await _body(request, MessageIn)
        files = []
        for file in body.files:
            try:
                data = base64.b64decode(file.data, validate=True)
            except (binascii.Error, ValueError):
                raise PayloadError(f"{file.filename}: data is not base64") from None
            files.append(Attachment(file.filename, file.content_type, data))
        who = _known.get((channel_id, visitor)) or Identity(visitor, email=_emails.get((channel_id, visitor)))
        message = connector.message(who, body.id, body.text, files=tuple(files), language=body.language)
        results = await intake.store(channel_id, [message])
        found = results[0] if results else None
        return _answer(202, {"message_id": found.message_id if found else None,
                             "duplicate": bool(found and found.duplicate)}, headers)
    return await as_visitor(request, channel_id, x_omnidesk_visitor, work)


@router.post("/webchat/{channel_id}/typing")
async def visitor_typing(channel_id: int, request: Request,
                         x_omnidesk_visitor: Annotated[str | None, Header()] = None) -> Response:
    """The visitor is typing: a ``visitor.typing`` event the agents see (every few seconds)."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        await run_in_threadpool(visitors.typing, get_engine(), channel_id, visitor)
        return Response(status_code=204, headers=headers)
    return await as_visitor(request, channel_id, x_omnidesk_visitor, work)


@router.post("/webchat/{channel_id}/read")
async def visitor_read(channel_id: int, request: Request,
                       x_omnidesk_visitor: Annotated[str | None, Header()] = None) -> Response:
    """The visitor has seen the replies up to ``up_to``: they become ``read`` (the agent's tick)."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        body = await _body(request, ReadIn)
        moved = await run_in_threadpool(visitors.mark_read, get_engine(), channel_id, visitor, body.up_to)
        return _answer(200, {"read": moved}, headers)
    return await as_visitor(request, channel_id, x_omnidesk_visitor, work)


@router.post("/webchat/{channel_id}/email")
async def leave_email(channel_id: int, request: Request,
                      x_omnidesk_visitor: Annotated[str | None, Header()] = None) -> Response:
    """Where replies go by email once the visitor has left (nobody there, or a pre-chat form)."""
    async def work(connector: WebchatConnector, headers: dict[str, str], visitor: str) -> Response:
        body = await _body(request, EmailIn)
        await run_in_threadpool(visitors.leave_email, get_engine(), channel_id, visitor, body.email)
        _emails[(channel_id, visitor)] = body.email
        if body.name:
            known = _known.get((channel_id, visitor))
            _known[(channel_id, visitor)] = Identity(visitor, name=body.name, email=known.email if known else None)
        return Response(status_code=204, headers=headers)
    return await as_visitor(request, channel_id, x_omnidesk_visitor, work)


@router.get("/webchat/{channel_id}/files/{attachment_id}")
async def file(channel_id: int, attachment_id: int, request: Request,
               token: Annotated[str | None, Query(max_length=1000)] = None) -> Response:
    """One file of the visitor's conversation (``?token=``: an image's link cannot carry a header).
    The link is the visitor's token: no Origin is sent for images, so none is asked here."""
    try:
        visitor = visitor_of(channel_id, token)
        found = await run_in_threadpool(visitors.attachment, get_engine(), channel_id, visitor, attachment_id) \
            if 0 < attachment_id <= MAX_ID else None
    except Refused as exc:
        return _answer(exc.status, {"detail": exc.detail}, {})
    if found is None:
        return _answer(404, {"detail": "no such file"}, {})
    image = found.content_type.startswith("image/") and found.content_type != "image/svg+xml"
    disposition = "inline" if image else "attachment"
    return Response(found.data, media_type=found.content_type if image else "application/octet-stream", headers={
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{_quote(found.filename)}",
        "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "cross-origin",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, max-age=3600"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@router.get("/widget.js", include_in_schema=False)
def widget() -> Response:
    """The widget a shop's page loads with one script tag."""
    return Response(WIDGET.read_bytes(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff",
                             "Cross-Origin-Resource-Policy": "cross-origin"})
