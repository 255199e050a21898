"""The HTTP surface: webhooks, the agent/admin API under /api/v1, health."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors import REGISTRY
from web.asgi import Receive, Scope, Send, webhook_channel

log = logging.getLogger("omnidesk.web")

Webhook = Callable[[int, Scope, Receive, Send], Awaitable[None]]


class App(FastAPI):
    """FastAPI, but ``POST /webhooks/{channel_id}`` goes straight to ``webhook_handler``, a plain
    ASGI handler, past the framework's routing and middleware (see ``web.asgi``)."""

    def __init__(self, *, webhook_handler: Webhook, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.webhook_handler = webhook_handler  # (FastAPI's own ``webhooks`` documents outgoing ones)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        channel_id = webhook_channel(scope)
        if channel_id is None:
            await super().__call__(scope, receive, send)  # type: ignore[arg-type]
        else:
            await self.webhook_handler(channel_id, scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with its one untrue part mended: invalid input answers
        ``{"detail": "<message>"}`` (see ``create_app``), not FastAPI's list of errors."""
        if self.openapi_schema is None:
            self.openapi_schema = errors_as_strings(super().openapi())
        return self.openapi_schema


def errors_as_strings(document: dict[str, Any]) -> dict[str, Any]:
    from web.schemas import ErrorOut

    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                for media in answer.get("content", {}).values():
                    if media.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                        media["schema"] = {"$ref": "#/components/schemas/ErrorOut"}
    return document


def create_app(*, demo: bool = False) -> FastAPI:
    """The web app. ``demo`` (or the environment's ``OMNIDESK_DEMO=1``, for uvicorn's factory)
    adds the demo shop's callback endpoint, which ``omnidesk up --demo`` points its channel at."""
    from web import (
        api_admin,
        api_canned,
        api_compose,
        api_conversations,
        api_inbox,
        api_me,
        api_rules,
        api_search,
        api_session,
        api_sla,
        health,
        media,
        pages,
        webchat,
        webchat_stream,
        webhooks,
    )
    from web import events as event_stream
    from web import metrics as prometheus_metrics

    demo = demo or os.environ.get("OMNIDESK_DEMO", "").strip() == "1"
    app = App(
        webhook_handler=webhooks.serve,
        title="omnidesk",
        version="0.1.0",
        docs_url=None,  # served by web.pages from local files (no CDN)
        redoc_url=None,
        description=(
            "Omnichannel customer service: one inbox for every channel, routing to agents, replies "
            f"delivered on the customer's channel. Channel kinds available: {', '.join(sorted(REGISTRY))}.\n\n"
            "Calls under `/api/v1` take `Authorization: Bearer <token>` (Authorize above), or the inbox's "
            "session cookie from `POST /api/v1/session` (writes with it need its `X-CSRF-Token`). Errors answer "
            '`{"detail": "<message>"}`; lists answer `{"items": [...], "next": <cursor or null>}`.'
        ),
    )
    app.include_router(health.router)
    app.include_router(prometheus_metrics.router)  # GET /metrics
    app.include_router(webhooks.router)
    app.include_router(media.router)  # GET /media/{id}: a reply's file, by its signed link (Twilio)
    app.include_router(webchat.router)  # the chat widget's endpoints and /widget.js
    app.include_router(webchat_stream.router)  # the chat visitor's own event stream
    app.include_router(api_admin.router, prefix="/api/v1")
    app.include_router(api_me.router, prefix="/api/v1")
    app.include_router(api_inbox.router, prefix="/api/v1")  # before /conversations/{id}: has /conversations/counts
    app.include_router(api_conversations.router, prefix="/api/v1")
    app.include_router(api_compose.router, prefix="/api/v1")
    app.include_router(api_canned.router, prefix="/api/v1")
    app.include_router(api_rules.router, prefix="/api/v1")
    app.include_router(api_search.router, prefix="/api/v1")
    app.include_router(api_sla.router, prefix="/api/v1")
    app.include_router(api_session.router, prefix="/api/v1")
    app.include_router(event_stream.router, prefix="/api/v1")  # GET /api/v1/events
    pages.mount(app)  # /, /invite/{token}, /ui/..., /docs
    if demo:
        from web import demo as demo_shop

        app.include_router(demo_shop.router)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app
