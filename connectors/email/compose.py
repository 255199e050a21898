"""Writing a reply as the customer's mail client expects it: threaded, with the ticket number."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from connectors.base import Identity, OutboundMessage
from connectors.email.config import EmailConfig
from connectors.email.ids import make_message_id

# "Re:" as clients of many languages write it: a reply's subject does not get a second one.
_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|antw|rif|odp|res|vs|wg|r)\s*(\[\d+\])?\s*:", re.IGNORECASE)
MAX_REFERENCES = 20


def subject_for(subject: str | None, number: int) -> str:
    base = " ".join((subject or "").split()) or "Your request"
    if not _REPLY_PREFIX.match(base):
        base = f"Re: {base}"
    tag = f"[#{number}]"
    return base if tag in base else f"{base} {tag}"


def references_for(message: OutboundMessage) -> list[str]:
    refs = [r for r in message.references if r and r != message.external_id]
    if message.in_reply_to and message.in_reply_to not in refs:
        refs.append(message.in_reply_to)
    return refs[-MAX_REFERENCES:]


def _address(who: Identity) -> str:
    return formataddr((who.name or "", who.email or who.external_id))


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def compose_reply(config: EmailConfig, message: OutboundMessage) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((config.from_name or "", config.address))
    msg["To"] = _address(message.to)
    cc = [_address(who) for who in message.cc if (who.email or who.external_id) != config.address]
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject_for(message.subject, message.conversation_number)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message.external_id or make_message_id(message.message_id, config.address)
    refs = references_for(message)
    if message.in_reply_to:
        msg["In-Reply-To"] = message.in_reply_to
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
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(attachment.data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=attachment.filename)
    return msg


def recipients(msg: EmailMessage) -> list[str]:
    found: list[str] = []
    for header in ("To", "Cc"):
        for address in getattr(msg[header], "addresses", ()) if msg[header] else ():
            if address.addr_spec and address.addr_spec not in found:
                found.append(address.addr_spec)
    return found
