"""Automatic acknowledgements: the customer hears that we got their message, and when to expect
an answer.

Outside business hours it says when the shop opens again (in the team's time zone); within
them, only when the wait will be long, it gives the expected wait. In the conversation's language
(en, es, ca, pt, pl; else the shop's default, OMNIDESK_ACK_LANGUAGE). At most one per
conversation per period; never to automatic mail (auto-replies, lists, bounces); never where the
channel would refuse it: outside a reply
window (WhatsApp's 24 hours: free text only), or to a customer who opted out or blocked us.
:func:`compose` is the decision, pure over ``store.acks.AckState``; :func:`acknowledge` applies
it through the store, sending the text as a normal reply marked automatic.

The expected wait is a parameter (``estimate``) of the decision; :func:`acknowledge` gives it the
router's live one (:func:`live_wait`: ``router.waits``, the same estimate the conversation API shows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from router.hours import local, next_open, open_at
from router.sla import hours_of
from router.waits import queue_place
from store import acks
from store.acks import AckState
from store.models import utcnow
from store.outbound import ReplyRefused, create_reply
from store.reachability import ContactUnreachable

log = logging.getLogger("omnidesk.router.ack")

# Texts per language: {when} a local date and time, {minutes} the expected wait.
TEXTS: dict[str, dict[str, str]] = {
    "en": {"closed": "Thank you for your message. We are closed now; we will answer from {when}.",
           "wait": "Thank you for your message. We will answer in about {minutes} minutes."},
    "es": {"closed": "Gracias por tu mensaje. Ahora estamos cerrados; te responderemos a partir del {when}.",
           "wait": "Gracias por tu mensaje. Te responderemos en unos {minutes} minutos."},
    "ca": {"closed": "Gràcies pel teu missatge. Ara som tancats; et respondrem a partir del {when}.",
           "wait": "Gràcies pel teu missatge. Et respondrem d'aquí a uns {minutes} minuts."},
    "pt": {"closed": "Obrigado pela sua mensagem. Estamos fechados agora; responderemos a partir de {when}.",
           "wait": "Obrigado pela sua mensagem. Responderemos dentro de cerca de {minutes} minutos."},
    "pl": {"closed": "Dziękujemy za wiadomość. Teraz jesteśmy zamknięci; odpowiemy od {when}.",
           "wait": "Dziękujemy za wiadomość. Odpowiemy w ciągu około {minutes} minut."},
}
WEEKDAYS: dict[str, tuple[str, ...]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "ca": ("dilluns", "dimarts", "dimecres", "dijous", "divendres", "dissabte", "diumenge"),
    "pt": ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo"),
    "pl": ("poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota", "niedziela"),
}

Estimate = Callable[[AckState], float | None]


def language_of(state: AckState, default: str = "en") -> str:
    """The conversation's language when we have texts for it (``pt-BR`` -> ``pt``), else the
    shop's ``default`` (else English)."""
    for lang in (state.language, default):
        code = (lang or "").split("-")[0].split("_")[0].lower()
        if code in TEXTS:
            return code
    return "en"


def when_text(lang: str, zone_name: str, at_local: datetime) -> str:
    """``at_local`` (the opening, in the team's zone) as the customer reads it."""
    day = WEEKDAYS[lang][at_local.weekday()]
    if lang == "en":
        return f"{day} {at_local:%d/%m} at {at_local:%H:%M} ({zone_name})"
    return f"{day} {at_local:%d/%m}, {at_local:%H:%M} ({zone_name})"


def live_wait(engine: Engine, conversation_id: int) -> Estimate:
    """The router's live estimate for the conversation (``router.waits.queue_place``): none while
    an online agent has room (routing takes it now); None (unknown) when nobody is online."""
    def estimate(state: AckState) -> float | None:
        if state.agents_online <= 0:
            return None
        if state.spare_capacity > 0:
            return 0.0
        return queue_place(engine, conversation_id)[1]
    return estimate


def compose(state: AckState, now: datetime, *, period: timedelta, long_wait: float,
            estimate: Estimate, default_language: str = "en") -> str | None:
    """The acknowledgement to send now, or None: see the module docstring for when."""
    if state.status == "resolved" or state.waiting_since is None or state.last_in_automatic:
        return None
    if state.unreachable is not None or (state.window_end is not None and now > state.window_end):
        return None
    if state.acked_at is not None and now - state.acked_at < period:
        return None
    lang = language_of(state, default_language)
    hours = hours_of(state.hours)
    if not open_at(hours, now):
        opens = next_open(hours, now)
        if opens is None or hours is None:
            return None
        return TEXTS[lang]["closed"].format(when=when_text(lang, hours.timezone, local(hours, opens)))
    if state.assignee_id is not None:
        return None
    wait = estimate(state)
    if wait is None or wait < long_wait:
        return None
    return TEXTS[lang]["wait"].format(minutes=max(1, round(wait / 60)))


def acknowledge_all(engine: Engine, conversation_ids: Iterable[int], *, period: timedelta, long_wait: float,
                    default_language: str = "en") -> list[int]:
    """:func:`acknowledge` for each of the conversations, their states read together; the ids of
    the replies made."""
    now = utcnow()
    made = []
    for conversation_id, state in acks.ack_states(engine, conversation_ids).items():
        reply = acknowledge(engine, conversation_id, period=period, long_wait=long_wait, now=now,
                            default_language=default_language, state=state)
        if reply is not None:
            made.append(reply)
    return made


def acknowledge(engine: Engine, conversation_id: int, *, period: timedelta, long_wait: float,
                estimate: Estimate | None = None, now: datetime | None = None,
                default_language: str = "en", state: AckState | None = None) -> int | None:
    """Send the conversation's acknowledgement if :func:`compose` gives one and this caller
    claims it (once per period); the reply's id, or None. ``state``: the conversation's, when
    the caller read it already (``store.acks.ack_states``)."""
    now = now or utcnow()
    state = state or acks.ack_state(engine, conversation_id)
    if state is None:
        return None
    text = compose(state, now, period=period, long_wait=long_wait, estimate=estimate or live_wait(engine, conversation_id),
                   default_language=default_language)
    if text is None or not acks.claim(engine, conversation_id, now, period):
        return None
    try:
        return create_reply(engine, conversation_id, agent_id=None, text=text, automatic=True)
    except (ReplyRefused, ContactUnreachable, LookupError) as exc:  # changed since the look: skipped
        log.info("conversation %s: acknowledgement skipped (%s)", conversation_id, exc)
        return None
