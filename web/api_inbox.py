"""The inbox's reads beyond the conversation list: the views' counts, read markers, the contact
panel. Visibility is ``router.access.may_see`` (its SQL form in the store); what the caller may
not see answers 404 as a missing id does."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from store import conversations as store
from store import inbox
from store.db import get_engine
from web.api_conversations import summary_out
from web.deps import CurrentAgent, check_visible
from web.schemas import ContactDetail, CountsOut, Id, IdentityOut, ReadOut, errors

router = APIRouter(tags=["inbox"], responses=errors(401, 422))


@router.get("/conversations/counts")
def counts(agent: CurrentAgent) -> CountsOut:
    """How many open and pending conversations the caller may see: theirs, unassigned, all, and
    those with a customer message they have not read."""
    return CountsOut(**inbox.counts(get_engine(), agent.id, admin=agent.role == "admin"))


@router.post("/conversations/{conversation_id}/read", responses=errors(404))
def mark_read(conversation_id: Id, agent: CurrentAgent) -> ReadOut:
    """The caller has read the conversation up to its newest message (their ``unread`` becomes 0;
    a ``conversation.read`` event tells their other tabs)."""
    check_visible(agent, store.summary(get_engine(), conversation_id), f"no conversation {conversation_id}")
    newest = inbox.mark_read(get_engine(), agent.id, conversation_id)
    return ReadOut(conversation_id=conversation_id, last_read_message_id=newest)


@router.get("/contacts/{contact_id}", responses=errors(404))
def contact(contact_id: Id, agent: CurrentAgent) -> ContactDetail:
    """A contact, their identities on every channel, and their conversations the caller may see
    (newest first). 404 when the caller may see none of them."""
    panel = inbox.contact_panel(get_engine(), contact_id, agent.id, admin=agent.role == "admin")
    if panel is None:
        raise HTTPException(404, f"no contact {contact_id}")
    person = panel.contact
    return ContactDetail(
        id=person.id, name=person.name, email=person.email, phone=person.phone, created_at=person.created_at,
        attributes=person.attributes or {},
        identities=[IdentityOut(**row._asdict()) for row in panel.identities],
        conversations=[summary_out(row, panel.extras.get(row.id)) for row in panel.conversations],
    )
