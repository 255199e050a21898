"""Writing a reply as the customer's mail client expects it: threaded, with the ticket number.

Headers go through :mod:`email.headerregistry` (names and subjects RFC 2047-encoded, addresses
quoted as needed), except In-Reply-To and References: Python folds a long message id of those
into encoded words, which no client threads by, so they are folded between ids only.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import UTC, datetime
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime
from typing import Any

from connectors.base import Identity, OutboundMessage
from connectors.email.config import EmailConfig
from connectors.email.ids import make_message_id
from connectors.errors import PermanentError

log = logging.getLogger(__name__)

# "Re:" as clients of many languages write it: a reply's subject does not get a second one.
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|rif|odp|res|vs|wg|r)\s*(\[\d+\])?\s*:", re.IGNORECASE)
MAX_REFERENCES = 20
DEFAULT_SUBJECT = "Your request"


class _IdListHeader(UnstructuredHeader):
    """A list of message ids, folded only between ids (lines may exceed 78 characters, up to 998)."""

    def fold(self, *, policy: Any) -> str:
        lines = [f"{self.name}:"]
        for msg_id in str(self).split():
            if len(lines[-1]) > len(self.name) + 1 and len(lines[-1]) + 1 + len(msg_id) > policy.max_line_length:
                lines.append("")
            lines[-1] += " " + msg_id
        return policy.linesep.join(lines) + policy.linesep


_REGISTRY = HeaderRegistry()
for _name in ("in-reply-to", "references"):
    _REGISTRY.map_to_type(_name, _IdListHeader)
POLICY: EmailPolicy = SMTP.clone(header_factory=_REGISTRY)


def subject_for(subject: str | None, number: int) -> str:
    """``Re: <subject> [#<number>]``, without a second "Re:" or a second ticket number."""
    base = " ".join((subject or "").split()) or DEFAULT_SUBJECT
    if not _REPLY_PREFIX.match(base):
        base = f"Re: {base}"
    tag = f"[#{number}]"
    return base if tag in base else f"{base} {tag}"


def _usable_id(value: str | None) -> bool:
    return bool(value) and value.isascii() and not any(c.isspace() for c in value)  # type: ignore[union-attr]


def references_for(message: OutboundMessage) -> list[str]:
    """The thread's ids, oldest first, ending with the message answered; the last
    :data:`MAX_REFERENCES` of them (clients need the first and last few at most)."""
    refs = [r for r in dict.fromkeys(message.references) if _usable_id(r) and r != message.external_id]
    if _usable_id(message.in_reply_to):
        if message.in_reply_to in refs:
            refs.remove(message.in_reply_to)
        refs.append(message.in_reply_to)  # type: ignore[arg-type]
    return refs[-MAX_REFERENCES:]


def address_of(who: Identity) -> Address:
    """The person as a header address. PermanentError when there is no address we can write:
    none at all, no domain, or a non-ASCII local part (which would need SMTPUTF8)."""
    spec = (who.email or who.external_id or "").strip()
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>," for c in spec):
        raise PermanentError(f"no email address to answer: {spec!r} is not one" if spec
                             else "the customer has no email address to answer")
    if not local.isascii():
        raise PermanentError(f"{spec} has a non-ASCII mailbox name, which this channel cannot send to")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise PermanentError(f"{spec} has an invalid domain") from None
    name = " ".join((who.name or "").split())
    return Address(display_name=name if name != spec else "", username=local, domain=domain)


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def compose_reply(config: EmailConfig, message: OutboundMessage) -> EmailMessage:
    """The reply as a MIME message: text and HTML alternatives (the HTML rendered from the text
    when the agent wrote none), signature, attachments, threading headers and loop marks.
    PermanentError when the customer has no address to write to."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(display_name=config.from_name or "", addr_spec=config.address)
    msg["To"] = address_of(message.to)
    cc: list[Address] = []
    for who in message.cc:
        try:
            person = address_of(who)
        except PermanentError as exc:
            log.info("reply %s: Cc left out: %s", message.message_id, exc.reason)
            continue
        if person.addr_spec.lower() not in {config.address.lower(), msg["To"].addresses[0].addr_spec.lower()}:
            cc.append(person)
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject_for(message.subject, message.conversation_number)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message.external_id or make_message_id(message.message_id, config.address)
    if _usable_id(message.in_reply_to):
        msg["In-Reply-To"] = message.in_reply_to
    refs = references_for(message)
    if refs:
        msg["References"] = " ".join(refs)
    if message.automatic:
        msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots must not answer it
    msg["X-Omnidesk-Conversation"] = str(message.conversation_number)

    text = message.text.rstrip()
    body_html = message.html or text_to_html(text)
    if config.signature:
        text += "\n\n-- \n" + config.signature.strip()
        body_html += f'<div class="signature">-- <br>{text_to_html(config.signature)}</div>'
    msg.set_content(text + "\n", cte="quoted-printable")
    msg.add_alternative(f"<!DOCTYPE html><html><body>{body_html}</body></html>\n", subtype="html",
                        cte="quoted-printable")
    html_part = msg.get_body(("html",))
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        kind = {"maintype": maintype or "application", "subtype": subtype or "octet-stream"}
        if attachment.inline and attachment.content_id and html_part is not None:
            # an image the HTML shows (cid:...): travels with the HTML part, in multipart/related
            html_part.add_related(attachment.data, **kind, cid=f"<{attachment.content_id.strip('<>')}>",
                                  filename=attachment.filename, disposition="inline")
        else:
            msg.add_attachment(attachment.data, **kind, filename=attachment.filename)
    return msg


def recipients(msg: EmailMessage) -> list[str]:
    """The envelope recipients: everyone in To and Cc, once."""
    found: list[str] = []
    for header in ("To", "Cc"):
        for address in getattr(msg[header], "addresses", ()) if msg[header] else ():
            if address.addr_spec and address.addr_spec not in found:
                found.append(address.addr_spec)
    return found
