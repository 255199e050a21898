"""``GET /media/{attachment_id}?expires=&signature=``: a reply's file, for the provider that sends
it (Twilio fetches each ``MediaUrl`` of an MMS or WhatsApp reply). The link is the credential: no
cookie or token, a signature over the file's id and the link's expiry (``store.media``), checked
in constant time. 403 for a link forged, altered or expired, 404 for a file that is no reply's
(a customer's file, a private note's): nothing else is served this way.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Response

from store import media
from store.db import get_engine
from web.schemas import ErrorOut

log = logging.getLogger("omnidesk.web.media")

router = APIRouter(tags=["media"])


@router.head("/media/{attachment_id}", response_class=Response, include_in_schema=False)
@router.get("/media/{attachment_id}", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "the file"},
    403: {"model": ErrorOut, "description": "the link is forged, altered or expired"},
    404: {"model": ErrorOut, "description": "no such file of a reply"}})
def reply_file(attachment_id: int, expires: str = Query("", max_length=20),
               signature: str = Query("", max_length=100)) -> Response:
    """A reply's file, by the signed link its send named (see the module)."""
    wrong = media.verify(attachment_id, expires, signature)
    if wrong is not None:
        log.info("media link to file %s refused: %s", attachment_id, wrong)
        raise HTTPException(403, "this link is not valid (forged, altered or expired)")
    row = media.reply_file(get_engine(), attachment_id)
    if row is None:
        raise HTTPException(404, f"no file {attachment_id} of a reply")
    return Response(row.data, media_type=row.content_type, headers={
        "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store"})
