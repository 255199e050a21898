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
