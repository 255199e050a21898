"""Search for the agents' inbox: ``GET /api/v1/search?q=``.

One list of hits, each with the conversation it is in (as the conversation list shows it): first
the contacts whose name, email or phone matches (newest contact first, each with their newest
conversation the caller may see), then the messages whose text matches (newest first), private
notes included. Only what the caller may see is ever found (``store.search``).

The cursor says where the next page starts: ``c<id>`` within the contacts (below that id),
``m<id>`` within the messages, ``m`` at the first message.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Query

from store import conversations, inbox
from store import search as store
from store.db import get_engine
from web.api_conversations import summary_out
from web.deps import CurrentAgent
from web.schemas import ContactOut, MessageFound, SearchHit, SearchList, errors

router = APIRouter(tags=["conversations"], responses=errors(401, 422))
_CURSOR = re.compile(r"(c|m)(\d{0,10})")


def _cursor(cursor: str | None) -> tuple[str, int | None]:
    """("c" or "m", the id below which to go on, or None for the top)."""
    if cursor is None:
        return "c", None
    found = _CURSOR.fullmatch(cursor)
    below = int(found.group(2)) if found and found.group(2) else None
    if found is None or (below is not None and not 0 < below <= 2**31):
        raise HTTPException(422, "cursor: not a cursor of this search (give the `next` of the previous page)")
    return found.group(1), below


@router.get("/search")
def search(
    agent: CurrentAgent,
    q: str = Query(min_length=1, max_length=store.MAX_QUERY, description="words to find; \"a phrase\"; the last "
                   "word matches as a prefix unless followed by a space"),
    cursor: str | None = Query(None, max_length=12, description="the `next` of the previous page"),
    limit: int = Query(20, ge=1, le=100),
) -> SearchList:
    """Contacts (name, email, phone) and messages (text, private notes too) that match ``q``, in
    the conversations the caller may see."""
    engine, admin = get_engine(), agent.role == "admin"
    terms = store.parse(q)
    phase, below = _cursor(cursor)
    people: list[store.ContactHit] = []
    found: list[store.MessageHit] = []
    next_cursor: str | None = None
    if phase == "c":
        people, more = store.find_contacts(engine, agent.id, admin=admin, terms=terms, limit=limit, before_id=below)
        if more:
            next_cursor = f"c{people[-1].id}"
        below = None
    if next_cursor is None:
        room = limit - len(people)
        # With no room left, one message still says whether a page of messages follows.
        found, more = store.find_messages(engine, agent.id, admin=admin, terms=terms, limit=max(room, 1),
                                          before_id=below)
        if room == 0:
            next_cursor, found = ("m" if found else None), []
        elif more:
            next_cursor = f"m{found[-1].id}"
    rows = conversations.summaries_by_id(engine, [h.conversation_id for h in [*people, *found]],
                                         inbox.columns(agent.id))
    shown = {id_: summary_out(row, inbox.extra(row)) for id_, row in rows.items()}
    items = [SearchHit(conversation=shown[h.conversation_id], message=None,
                       contact=ContactOut(id=h.id, name=h.name, email=h.email, phone=h.phone))
             for h in people if h.conversation_id in shown]
    items += [SearchHit(conversation=shown[h.conversation_id], contact=None,
                        message=MessageFound(id=h.id, snippet=h.snippet, created_at=h.created_at))
              for h in found if h.conversation_id in shown]  # a conversation deleted meanwhile: left out
    return SearchList(items=items, next=next_cursor)

