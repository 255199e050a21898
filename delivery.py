"""The deliver job's work: send one claimed reply through its channel's connector and record the
outcome (store.outbound). ``workers.deliver`` is the thin actor around :func:`deliver_one`; the jobs
it rings again are its :class:`Bells`.

- A reply past ``OMNIDESK_MAX_ATTEMPTS``, or on a disabled channel, fails with the reason.
- On a channel that cannot drop a repeat, a reply whose earlier attempt's outcome is unknown (a
  dropped connection, a stopped worker) is first looked up at the provider (``find_sent``): sent
  again only if it is not there; where the provider cannot tell, a reply taken over from a stopped
  worker fails with :data:`OUTCOME_UNKNOWN` rather than reach the customer twice.
- The send waits for its pacing slot (pacing.py) where the channel has send limits.
- Permanent errors fail the reply with the provider's reason (an unreachable customer is marked);
  transient ones come back later with backoff (the provider's ``retry_after`` wins); a channel's
  configuration error is shown on the channel too.
- A sent reply on a channel with a fallback (web chat: the shop's email) goes out there too when
  the customer left without reading it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pacing
from connectors.base import SendLimit
from connectors.errors import ConfigError, PermanentError, RecipientUnreachable, TransientError
from fetching import backoff
from store import channels as channel_store
from store import outbound, visitors
from store.models import utcnow
from store.settings import get_settings

log = logging.getLogger("omnidesk.delivery")


@dataclasses.dataclass(frozen=True, slots=True)
class Bells:
    """The jobs delivery rings again: ``again(message_id, delay)`` the reply's (or a copy's) send,
    ``fall_back(message_id, fallback_channel_id, delay)`` the check for its fallback copy."""

    again: Callable[[int, float], None]
    fall_back: Callable[[int, int, float], None]


# What the agent reads when a reply's earlier attempt may or may not have reached the customer
# and its channel gives the receiver no way to drop a repeat.
OUTCOME_UNKNOWN = ("not known whether this reached the customer: the worker sending it stopped before it "
                   "could record the outcome; send it again if the customer did not get it")


# Pacing (pacing.py): a slot within pacing.HORIZON is the reply's, slept to in this thread with the
# claim held, and used even when the sleep ends late (the pacer keeps the next send an interval
# after it). A reply with no slot that near reserves none: it goes back to pending and
# is rung again PACE_EARLY seconds before its place in the queue, to ask again (a reply held back only
# by another of its keys, SPARE, comes back at that key's slot).
PACE_EARLY = pacing.HORIZON / 2
PACE_MIN_DELAY = 0.1  # a reply put off comes back no sooner than this


def paced(engine: Any, message_id: int, limits: tuple[SendLimit, ...], bells: Bells) -> pacing.Start | None:
    """Wait for a send slot of every limit and claim the send's start (tell the pacer when it was
    answered: ``pacing.current().sent``); None when the reply was put off (no slot near)."""
    slot = pacing.ask(limits)
    if not slot.taken:
        # Held back by another key (SPARE): back at that slot; else early enough to find it near.
        delay = max(slot.wait - PACE_EARLY if slot.wait > pacing.HORIZON else slot.wait, PACE_MIN_DELAY)
        outbound.defer(engine, message_id, delay)
        bells.again(message_id, delay)
        return None
    if slot.wait > 0:
        time.sleep(slot.wait)
    start = pacing.current().sending(limits)  # sends before this one arrived late, or bunched: keep apart
    if start.wait > 0:
        time.sleep(start.wait)
    return start


def answered(limits: tuple[SendLimit, ...], start: pacing.Start) -> None:
    """Tell the pacer the send was answered (or failed): it arrived by now, if at all. A pacer
    that cannot be told (Redis down a moment) counts the send as arriving a window after its
    start, which is only slower: never a reason to retry a send that went out."""
    try:
        pacing.current().sent(limits, start.token)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not tell the pacer a send was answered: %s", exc)


def deliver_one(engine: Any, claim: outbound.Claim, bells: Bells) -> None:
    """Send one claimed reply and record the outcome (see the module docstring)."""
    message = claim.message
    message_id = message.message_id
    max_attempts = get_settings().max_attempts
    if claim.attempts > max_attempts:
        outbound.mark_failed(engine, message_id, f"gave up after {max_attempts} attempts")
        return
    channel = channel_store.load_channel(engine, claim.channel_id)
    if channel is None or not channel.enabled:
        outbound.mark_failed(engine, message_id, "the channel is disabled")
        return
    try:
        connector = channel_store.connector_for(channel)
        note = None
        if (claim.taken_over or claim.attempts > 1) and not connector.capabilities.repeat_safe:
            found, note = earlier_attempt(connector, claim)
            if found is not None:
                outbound.mark_sent(engine, message_id, found, note)
                return
            if note is None:  # the channel cannot tell whether the earlier attempt went out
                if claim.taken_over:
                    outbound.mark_failed(engine, message_id, OUTCOME_UNKNOWN)
                    return
        message = connector.capabilities_for(message.thread_key, message.in_reply_to).fit(message)
        if message.external_id is None:
            chosen = connector.new_external_id(message_id)
            if chosen:
                outbound.set_external_id(engine, message_id, chosen)
                message = replace(message, external_id=chosen)
        limits = connector.send_limits(message)
        start = paced(engine, message_id, limits, bells) if limits else None
        if limits and start is None:
            return
        try:
            result = connector.send(message)
        finally:
            if start is not None:
                answered(limits, start)
    except RecipientUnreachable as exc:  # the reply fails and the customer's identity is marked
        outbound.mark_failed(engine, message_id, exc.reason, unreachable=True)
    except PermanentError as exc:
        outbound.mark_failed(engine, message_id, exc.reason)
    except TransientError as exc:
        if exc.sent:  # parts of it went out: the next attempt sends the rest
            outbound.set_external_id(engine, message_id, exc.sent)
        retry(engine, claim, exc.reason, exc.retry_after, bells)
    except ConfigError as exc:
        channel_store.mark_error(engine, channel.id, exc.reason, backoff=60, started=utcnow())
        retry(engine, claim, exc.reason, None, bells)
    except Exception as exc:  # a bug, not the channel: kept for the agent, tried again
        log.error("deliver %s failed: %s", message_id, type(exc).__name__)
        log.debug("deliver %s failed", message_id, exc_info=True)  # the text may quote customer data
        retry(engine, claim, f"{type(exc).__name__}: {exc}", None, bells)
    else:
        outbound.mark_sent(engine, message_id, result, note)
        _fall_back(engine, connector, claim, bells)


def _fall_back(engine: Any, connector: Any, claim: outbound.Claim, bells: Bells) -> None:
    """A reply on a channel with a fallback (web chat: the shop's email) goes out there too, as a
    copy in the same conversation, when the customer has left without reading it: at once when they
    are gone already, else checked again once they would count as gone (``workers.fall_back``)."""
    fallback = connector.fallback_channel()
    if fallback is not None:
        fall_back_now(engine, claim.message.message_id, fallback, bells, later=True)


def fall_back_now(engine: Any, message_id: int, fallback: int, bells: Bells, *, later: bool = False) -> None:
    """The fallback copy of a reply the visitor has not read, if they have left; ``later``: while
    they are still here, ask again once they would count as gone."""
    left_after = get_settings().webchat_left_after
    if not visitors.unread(engine, message_id):
        return
    if visitors.present(engine, visitors.conversation_of(engine, message_id), left_after):
        if later:
            bells.fall_back(message_id, fallback, left_after + 1)
        return
    copy_id = outbound.copy_to(engine, message_id, fallback)
    if copy_id is not None:
        bells.again(copy_id, 0)


# What the agent reads when a reply's earlier attempt was looked up at the provider.
FOUND_SENT = "an earlier attempt had reached the provider (its outcome was not known here): not sent again"
NOT_FOUND_SENT = "the provider has no earlier attempt of this reply: sent now"


def earlier_attempt(connector: Any, claim: outbound.Claim) -> tuple[Any, str | None]:
    """For a channel that cannot drop a repeat: ask the provider whether an earlier attempt at
    this reply (its outcome unknown: a dropped connection, a stopped worker) went out. Returns
    (its result or None, the note for the agent); the note is None when the channel cannot tell.
    TransientError (the provider cannot be asked now) propagates: retried later, nothing sent."""
    try:
        found = connector.find_sent(claim.message, since=claim.created_at or utcnow())
    except NotImplementedError:
        return None, None
    return found, FOUND_SENT if found is not None else NOT_FOUND_SENT


def retry(engine: Any, claim: outbound.Claim, reason: str, retry_after: float | None, bells: Bells) -> None:
    message_id, max_attempts = claim.message.message_id, get_settings().max_attempts
    if claim.attempts >= max_attempts:
        outbound.mark_failed(engine, message_id, f"gave up after {claim.attempts} attempts: {reason}")
        return
    delay = retry_after or backoff(claim.attempts)
    outbound.mark_retry(engine, message_id, reason, delay)
    bells.again(message_id, delay)
