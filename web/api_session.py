"""Signing in to the inbox: ``POST /session`` (email and password -> session cookie), ``GET
/session`` (who is signed in, and the CSRF token), ``DELETE /session`` (sign out), and the
one-time invite links (``GET``/``POST /invites/{token}``) with which an agent sets a password.

The cookie is HttpOnly (page scripts cannot read it), SameSite=Lax, Path=/, and Secure when
``OMNIDESK_PUBLIC_URL`` is https. Writes made with it need the CSRF token (see ``web.deps``). The
sign-in itself has no session yet to hold a CSRF token, so a browser's ``Origin``, when sent, must
be omnidesk's own: another site cannot sign a visitor in to an account of its choosing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from store import invites as invite_store
from store import passwords
from store import sessions as session_store
from store.db import get_engine
from store.models import utcnow
from store.settings import get_settings
from web.api_admin import agent_out
from web.deps import SESSION_COOKIE, current_session, session_cookie
from web.schemas import AgentOut, Input, errors

router = APIRouter(tags=["session"])
InviteToken = Annotated[str, Path(min_length=1, max_length=100, description="the token of the invite link")]
WRONG_PAIR = "wrong email or password"


class SignIn(Input):
    email: str = Field(min_length=1, max_length=320, examples=["ana@shop.example"])
    password: str = Field(min_length=1, max_length=passwords.MAX_LENGTH)


class NewPassword(Input):
    password: str = Field(min_length=passwords.MIN_LENGTH, max_length=passwords.MAX_LENGTH,
                          description=f"at least {passwords.MIN_LENGTH} characters")


class SessionOut(BaseModel):
    agent: AgentOut
    csrf_token: str = Field(description="send it in the `X-CSRF-Token` header of every write made with the cookie")
    expires_at: datetime


class InviteOut(BaseModel):
    name: str
    email: str
    expires_at: datetime


def secure_cookies() -> bool:
    return get_settings().public_url.lower().startswith("https://")


def opened(response: Response, session: session_store.Session) -> SessionOut:
    """The answer to a sign-in: the cookie set on ``response``, the session described."""
    assert session.token is not None  # a new session
    response.set_cookie(SESSION_COOKIE, session.token, path="/", httponly=True, samesite="lax",
                        secure=secure_cookies(), max_age=int((session.expires_at - utcnow()).total_seconds()))
    return described(session)


def described(session: session_store.Session) -> SessionOut:
    return SessionOut(agent=agent_out(session.agent.id), csrf_token=session.csrf_token, expires_at=session.expires_at)


def check_origin(request: Request) -> None:
    """403 when a browser says the request comes from another site than omnidesk's own (the
    public URL's, or the one the request was sent to)."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    public = get_settings().public_url.rstrip("/")
    own = {"/".join(public.split("/", 3)[:3]).lower(), f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if origin.lower() not in own:
        raise HTTPException(403, "sign-in from another site refused")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/session", responses=errors(401, 403, 422, 429))
def sign_in(body: SignIn, request: Request, response: Response) -> SessionOut:
    """Sign in with email and password: the session cookie, and the CSRF token for writes. A wrong
    pair answers 401, the same for an unknown email; after too many failures for the email or
    from the address, 429 with ``Retry-After``."""
    check_origin(request)
    try:
        session = session_store.sign_in(get_engine(), body.email, body.password, client_ip(request))
    except session_store.RateLimited as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if session is None:
        raise HTTPException(401, WRONG_PAIR)
    return opened(response, session)


@router.get("/session", responses=errors(401))
def who(request: Request, session_id: Annotated[str | None, Depends(session_cookie)]) -> SessionOut:
    """Who is signed in with this browser's cookie, and the session's CSRF token; 401 when
    nobody (API tokens: see ``GET /me``)."""
    if not session_id:
        raise HTTPException(401, "not signed in")
    return described(current_session(request, session_id))


@router.delete("/session", status_code=204, response_class=Response, responses=errors(403))
def sign_out(request: Request, session_id: Annotated[str | None, Depends(session_cookie)]) -> Response:
    """Sign out: the session ends and the cookie is cleared. Without a live session there is
    nothing to end (204 all the same); with one, the CSRF token is needed (403)."""
    if session_id and session_store.current(get_engine(), session_id) is not None:
        current_session(request, session_id)  # the CSRF check: another site cannot sign you out
        session_store.sign_out(get_engine(), session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies())
    return response


def _invite(token: str) -> Any:
    try:
        found = invite_store.look(get_engine(), token)
    except invite_store.InviteGone as exc:
        raise HTTPException(410, str(exc)) from None
    if found is None:
        raise HTTPException(404, "no such invite link")
    return found


@router.get("/invites/{token}", responses=errors(404, 410))
def invite(token: InviteToken) -> InviteOut:
    """Whom an invite link is for (the page that sets the password shows it)."""
    found = _invite(token)
    return InviteOut(name=found.name, email=found.email, expires_at=found.expires_at)


@router.post("/invites/{token}", responses=errors(403, 404, 410, 422))
def accept_invite(token: InviteToken, body: NewPassword, request: Request, response: Response) -> SessionOut:
    """Set your password with a one-time link, and be signed in. A link works once: used or
    expired, 410."""
    check_origin(request)
    _invite(token)
    try:
        session = invite_store.accept(get_engine(), token, body.password)
    except invite_store.InviteGone as exc:
        raise HTTPException(410, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if session is None:
        raise HTTPException(404, "no such invite link")
    return opened(response, session)
