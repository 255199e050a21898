"""The demo shop's end of the API channel (``omnidesk up --demo``): where its replies go.

Mounted only by ``create_app(demo=True)`` (or ``OMNIDESK_DEMO=1``): a production ``omnidesk web``
serves no unauthenticated endpoint of this kind.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

log = logging.getLogger("omnidesk.demo")
router = APIRouter(tags=["demo"])


@router.post("/demo/callback", status_code=204, response_class=Response,
             responses={204: {"description": "reply received"}})
async def demo_callback(request: Request) -> Response:
    """A reply delivered to the demo shop: accepted and logged (at info, its first 500 bytes)."""
    log.info("reply delivered to the demo shop: %s", (await request.body())[:500])
    return Response(status_code=204)  # no body: a 204 with one breaks its Content-Length


@router.get("/demo/shop", include_in_schema=False)
def demo_shop() -> Response:
    """A demo shop page with the chat widget, under a strict Content-Security-Policy."""
    from sqlalchemy import select

    from store.db import get_engine
    from store.sql import channels

    with get_engine().connect() as conn:
        channel_id = conn.execute(select(channels.c.id).where(channels.c.name == "Demo shop chat")).scalar()
    page = SHOP.replace("{channel}", str(channel_id or 0))
    return Response(page, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                   "connect-src 'self'; object-src 'none'; base-uri 'none'"})


SHOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo shop</title></head>
<body><h1>Demo shop</h1><p>Ask us anything: the chat is at the bottom right. Open this page in a second
tab, and the inbox (/) as a demo agent, to chat with yourself.</p>
<script src="/widget.js" data-channel="{channel}" async></script></body></html>
"""
