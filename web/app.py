"""The HTTP surface: webhooks, the agent/admin API under /api/v1, health."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def create_app() -> FastAPI:
    from web import api_admin, api_conversations, health, webhooks
    from web import metrics as prometheus_metrics

    app = App(
        webhook_handler=webhooks.serve,
        title="omnidesk",
        version="0.1.0",
        description="Omnichannel customer service: one inbox for email, WhatsApp, SMS, Telegram, X and web chat.",
    )
    app.include_router(health.router)
    app.include_router(prometheus_metrics.router)  # GET /metrics
    app.include_router(webhooks.router)
    app.include_router(api_admin.router, prefix="/api/v1")
    app.include_router(api_conversations.router, prefix="/api/v1")

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
