"""The connector contract: what every channel turns its traffic into, and back.

A connector knows one vendor. It never touches the database and never decides routing: it turns
pushes (webhooks) and pulls (polls) into frozen :class:`InboundMessage` / :class:`StatusUpdate`
values, and sends :class:`OutboundMessage` values, translating the vendor's failures into our two
error kinds (see :mod:`connectors.errors`).

Pushes (``POST /webhooks/{id}`` and its sub-routes such as ``/webhooks/{id}/status``, and
``GET /webhooks/{id}`` for a provider's challenge; ``request.route`` says which)::

    events = connector.parse(WebhookRequest(...))        # raises AuthError, PayloadError
    ...store events...
    reply = connector.answer(request)                    # the body the provider expects, or None

Pulls (the caller commits each batch, with its cursor, before asking for the next one; resuming
the iterator is the acknowledgement, after which the connector may flag or move what it imported)::

    for batch in connector.poll(cursor):
        store.record_inbound(channel_id, batch.events, cursor=batch.cursor)

Sends (the caller first lets the channel's capabilities shape the message, then keeps to the
rates the connector declares, shared by every worker process: see ``pacing.py``)::

    message = connector.capabilities_for(message.thread_key, message.in_reply_to).fit(message)
                                                         # raises PermanentError (too long, files)
    limits = connector.send_limits(message)              # SendLimit(key, per_second), ...
    result = connector.send(message)                     # raises TransientError, PermanentError
                                                         # (RecipientUnreachable: opted out, blocked)

Files the provider holds (a Twilio MediaUrl, a Telegram file_id) come as ``RemoteAttachment`` on
the message; the store keeps them pending and a worker fetches each later::

    fetched = connector.fetch(ref, max_bytes)            # raises TransientError, PermanentError

A customer's opt-out or opt-in (STOP/START) is a ``ReachabilityUpdate`` event, stored like a
message; replies to an unreachable customer are refused at once.

Setting a channel up: when a channel is saved (created, or its config changed) the API calls
``check()`` and then ``webhook_setup(url)`` with the channel's public webhook URL; a ConfigError
from either is shown to the admin (422) and the channel is not saved. Secrets the settings
generate (a webhook's secret token) and what ``check()`` learned are saved with the channel.
Deleting a channel calls ``webhook_teardown()`` once the channel is gone from the store: a
ConnectorError from it is shown to the admin, and the deletion stands.

An authenticated webhook carrying an event the connector does not use raises UnsupportedEvent:
the endpoint answers 200 and stores nothing, so the provider does not retry it forever.
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import ConfigError, PayloadError, PermanentError


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a customer is on one channel: the channel's own id for them, plus what we know."""

    external_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None  # inline images: the cid: the HTML refers to
    inline: bool = False
    # A reply's file: where a provider that fetches files itself (Twilio's MediaUrl) gets it, a
    # signed link under OMNIDESK_PUBLIC_URL that expires (set by the store; None elsewhere).
    url: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteAttachment:
    """A file the provider holds (Twilio MediaUrl, Telegram file_id), fetched later by a worker
    with Connector.fetch, so a slow or failing download never blocks the message's text."""

    ref: str  # what Connector.fetch needs: a URL, a file_id
    filename: str
    content_type: str
    size: int | None = None  # when the provider says


@dataclasses.dataclass(frozen=True, slots=True)
class Fetched:
    """What :meth:`Connector.fetch` got: the bytes, and the type and name when the provider said."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message, normalised. Nothing past ``connectors/`` reads a vendor payload.

    Threading: the store joins the message to the conversation that holds any of ``thread_refs``
    (earlier messages' external ids, e.g. email In-Reply-To/References), else to the one whose
    ``ticket_number`` is named (when the sender belongs to it), else to the open conversation with
    the same ``thread_key``; with none of these it starts a new conversation.
    """

    external_id: str  # unique per channel: redelivery of the same id is a no-op
    sender: Identity
    text: str = ""  # the new text, for display (quoted history and signature split off)
    html: str | None = None  # already sanitised
    quoted: str | None = None  # quoted history / signature split off ``text``
    subject: str | None = None
    thread_key: str | None = None
    thread_refs: tuple[str, ...] = ()
    ticket_number: int | None = None
    participants: tuple[Identity, ...] = ()  # others on the thread (email Cc)
    attachments: tuple[Attachment, ...] = ()
    # Files still at the provider: stored ``pending`` with the message, fetched by a worker.
    remote_attachments: tuple[RemoteAttachment, ...] = ()
    sent_at: datetime | None = None
    language: str | None = None
    automatic: bool = False  # auto-replies, lists, bulk: never auto-answer these
    parse_error: str | None = None  # stored anyway, with the raw source
    raw: bytes = b""  # the vendor payload as received, for audit and re-parsing


DeliveryStatus = Literal["pending", "sending", "sent", "delivered", "read", "failed"]


@dataclasses.dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery receipt or bounce for a message we sent, named by its external id; and by our
    own ``message_id`` where the provider echoes it back (a status callback URL the send named),
    so a receipt that overtakes the record of the send still finds its message."""

    external_id: str
    status: DeliveryStatus
    reason: str | None = None
    raw: bytes = b""
    message_id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ReachabilityUpdate:
    """The customer opted out (STOP) or back in (START) on this channel."""

    sender_external_id: str
    reachable: bool
    reason: str | None = None
    raw: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class MessageEdit:
    """The customer changed a message they sent earlier (Telegram's edited messages), named by its
    external id as its :class:`InboundMessage` was. The store shows the new text on that message,
    marked edited, and keeps the text it replaces in the message's history; an edit of a message
    it does not hold changes nothing."""

    external_id: str
    text: str
    edited_at: datetime | None = None
    raw: bytes = b""


Event = InboundMessage | StatusUpdate | ReachabilityUpdate | MessageEdit


@dataclasses.dataclass(frozen=True, slots=True)
class SendLimit:
    """How fast replies may go out under one key (a sender number, a bot, a bot's chat), shared by
    every worker process: the deliver job takes a slot of each limit of a reply before sending."""

    key: str  # e.g. "twilio:+15550001111", "telegram:bot123", "telegram:bot123:chat42"
    per_second: float


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A reply to send. ``external_id`` is set when the connector chose it in advance
    (:meth:`Connector.new_external_id`, e.g. an email Message-ID) so retries reuse it."""

    message_id: int
    conversation_id: int
    conversation_number: int
    to: Identity
    text: str
    html: str | None = None
    subject: str | None = None
    external_id: str | None = None
    in_reply_to: str | None = None  # the external id of the message answered
    references: tuple[str, ...] = ()  # external ids of the thread, oldest first
    thread_key: str | None = None  # the conversation's thread key (a DM thread, a public thread, ...)
    cc: tuple[Identity, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    automatic: bool = False  # sent by an automation, not a person
    # An approved template instead of free text: {"name": ..., "variables": {...}} (WhatsApp
    # outside its reply window); ``text`` then only says what was sent, for the agent.
    template: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    external_id: str | None
    status: DeliveryStatus = "sent"
    note: str | None = None  # what the agent should know of the send (e.g. "sent as 3 SMS segments")


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of an HTTP request a connector may look at. ``url`` is the public URL the
    provider called (rebuilt from the configured public base, not the Host header)."""

    method: str  # POST, or GET for a provider's challenge (X's CRC)
    url: str
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes
    route: str = ""  # the path after /webhooks/{id}/, e.g. "status" (Twilio receipts), "voice"
    # Whether the shop answers now (its business hours: the web layer asks the router), asked only
    # by a connector whose answer depends on it (the phone line's greeting).
    open_now: Callable[[], bool] = lambda: True


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """The body a provider expects back from a webhook, where it expects more than a status code:
    TwiML for Twilio, the CRC response token for X."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclasses.dataclass(frozen=True, slots=True)
class PollBatch:
    events: tuple[Event, ...]
    cursor: dict[str, Any]  # the position after these events; saved with them


@dataclasses.dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can do. Each field is enforced by the code that uses it, nowhere else:

    - ``push`` / ``pull`` / ``watch``: the webhook endpoint refuses channels without ``push``; the
      sweep polls only ``pull`` channels, and the scheduler watches only ``watch`` ones.
    - ``poll_interval``: seconds between polls when nothing tells us sooner; a channel's config may
      carry its own ``poll_interval`` field, which wins (see :attr:`Connector.poll_interval`).
    - ``poll_lease``: seconds ``poll_channel`` holds a channel; it renews the lease while the poll
      runs (every third of it) and after each batch, so a poller that died is replaced once it
      runs out, and a slow one that is alive never is.
    - ``reply_window``: a reply is refused when the customer's last message is older
      (``store.outbound.create_reply`` raises ``ReplyWindowClosed``; the API answers 422).
    - ``max_text_length``, ``supports_html``, ``supports_attachments`` and the file limits
      (``no_attachments_reason``, ``max_attachments``, ``max_attachments_bytes``,
      ``attachment_types``): :meth:`fit`, called by the deliver job before ``send``; the text
      and file limits also by ``create_reply`` (:meth:`check_text`, :meth:`check_files`), so a
      reply the channel cannot carry is refused before it is stored. A channel whose threads differ (X: 280
      characters in public, 10,000 in a DM) says so in :meth:`Connector.capabilities_for`.
    - ``repeat_safe``: the deliver job, when it takes over a reply whose earlier send may have
      happened (its worker stopped before recording the outcome).
    """

    push: bool = False
    pull: bool = False
    watch: bool = False  # pull channels that can be told of new data at once (IMAP IDLE)
    poll_interval: float = 60.0
    poll_lease: float = 300.0
    max_text_length: int | None = None
    reply_window: timedelta | None = None  # e.g. WhatsApp's 24 hours
    supports_html: bool = False
    supports_attachments: bool = False
    # Why files cannot go, where the agent should read more than "this channel cannot send
    # attachments" (an SMS to a number outside the US and Canada, where MMS does not reach).
    no_attachments_reason: str | None = None
    max_attachments: int | None = None  # files in one message (WhatsApp: 1)
    max_attachments_bytes: int | None = None  # all of one message's files together (MMS: 5 MB)
    # The file types the channel sends, each with its largest size in bytes: ("image/jpeg", 5 MB),
    # or a whole family ("image/*", ...). None: any type (up to the limits above).
    attachment_types: tuple[tuple[str, int], ...] | None = None
    # A second send of one reply can be told from the first by the receiver (the API channel's
    # delivery_id, an email's Message-ID): the deliver job may send again a reply whose earlier
    # attempt's outcome is unknown. Else that reply fails with a reason telling the agent so.
    repeat_safe: bool = False

    def fit(self, message: OutboundMessage) -> OutboundMessage:
        """``message`` as this channel can carry it: HTML dropped where only text goes (the text
        is always there); PermanentError, with a reason the agent reads, for a text that is too long
        or files the channel cannot send."""
        self.check_text(message.text)
        self.check_files(message.attachments)
        if message.html is not None and not self.supports_html:
            return dataclasses.replace(message, html=None)
        return message


    def check_files(self, files: Sequence[Attachment]) -> None:
        """PermanentError, with a reason the agent reads, for files the channel cannot send: any
        at all, too many, too large (each, or together), or of a type it does not take."""
        if not files:
            return
        if not self.supports_attachments:
            raise PermanentError(self.no_attachments_reason or "this channel cannot send attachments")
        if self.max_attachments is not None and len(files) > self.max_attachments:
            many = "one file" if self.max_attachments == 1 else f"{self.max_attachments} files"
            raise PermanentError(f"this channel sends at most {many} a message ({len(files)} attached); "
                                 "send the others in further replies")
        total = sum(f.size for f in files)
        if self.max_attachments_bytes is not None and total > self.max_attachments_bytes:
            raise PermanentError(f"the files come to {_size(total)}; this channel sends at most "
                                 f"{_size(self.max_attachments_bytes)} in one message")
        for file in files:
            kind = file.content_type.split(";")[0].strip().lower()
            if self.attachment_types is None:
                continue
            limit = next((most for pattern, most in self.attachment_types if _matches(pattern, kind)), None)
            if limit is None:
                taken = ", ".join(pattern for pattern, _ in self.attachment_types)
                raise PermanentError(f"{file.filename}: this channel cannot send {kind or 'untyped'} files "
                                     f"(it sends {taken})")
            if file.size > limit:
                raise PermanentError(f"{file.filename} has {_size(file.size)}; this channel sends {kind} files "
                                     f"of at most {_size(limit)}")

    def check_text(self, text: str) -> None:
        """PermanentError, with a reason the agent reads, for a text longer than the channel takes."""
        if self.max_text_length is not None and len(text) > self.max_text_length:
            raise PermanentError(f"the reply has {len(text)} characters; this channel takes at most "
                                 f"{self.max_text_length}")


def _matches(pattern: str, kind: str) -> bool:
    return kind == pattern or (pattern.endswith("/*") and kind.startswith(pattern[:-1]))


def _size(n: int) -> str:
    mb = n / 1_000_000
    return f"{mb:.3g} MB" if mb >= 0.1 else f"{n:,} bytes"


class ChannelConfig(BaseModel):
    """A channel's settings. Secret fields are typed ``pydantic.SecretStr``: they are stored
    encrypted and never returned by the API."""

    model_config = ConfigDict(extra="forbid")

    # Every channel: the ticket limit, seconds within which a customer's new message joins their
    # latest conversation on the channel instead of opening another (unset: OMNIDESK_NEW_CONVERSATION_INTERVAL).
    new_conversation_interval: float | None = Field(default=None, ge=0, le=30 * 86400)

    @classmethod
    def secret_fields(cls) -> set[str]:
        from pydantic import SecretStr

        return {
            name
            for name, field in cls.model_fields.items()
            if field.annotation in (SecretStr, SecretStr | None)
        }


class Connector(ABC):
    """One channel kind. Instances are cheap and built per use from the channel's config.

    A new channel subclasses this, declares ``kind``, ``Config`` and ``capabilities``, implements
    ``parse`` (push) or ``poll`` (pull) and ``send``, maps its vendor's errors in one place, and adds
    one line to ``connectors.REGISTRY``. Nothing outside ``connectors/`` may test the kind.

    Replies are sent at least once: a send whose outcome was not recorded (the worker died, the
    database went away) may be sent again. ``send`` therefore gives the receiver what it needs to
    drop a repeat where the channel allows (the API channel: ``delivery_id`` and an
    ``Idempotency-Key`` header; email: the Message-ID from :meth:`new_external_id`).
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ChannelConfig]]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, config: ChannelConfig, *, channel_id: int | None = None,
                 webhook_url: str | None = None) -> None:
        self.config = config
        self.channel_id = channel_id
        # This channel's public webhook URL (``/webhooks/{id}``, under OMNIDESK_PUBLIC_URL): what
        # the provider calls, and the base of the sub-routes a send names (Twilio's status_callback).
        self.webhook_url = webhook_url

    @property
    def poll_interval(self) -> float:
        """Seconds between polls: the config's own ``poll_interval`` when it has one, else the
        channel kind's default from ``capabilities``."""
        configured = getattr(self.config, "poll_interval", None)
        return float(configured) if configured else self.capabilities.poll_interval

    @classmethod
    def capabilities_for(cls, thread_key: str | None, in_reply_to: str | None) -> Capabilities:
        """What a reply in one conversation can be: the channel's ``capabilities`` unless its threads
        differ (X: a public mention thread takes 280 characters, a DM 10,000). ``thread_key``: the
        conversation's; ``in_reply_to``: the external id of the customer's latest message in it."""
        return cls.capabilities

    def direct_thread(self, external_id: str) -> str | None:
        """The thread key of a private conversation with the customer ``external_id`` (their id
        on this channel), for a conversation moved there from a public one (X: mentions to DMs);
        None where the channel has no such thing."""
        return None

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Authenticate a webhook and normalise it. Raises AuthError (checked first, always),
        PayloadError, or UnsupportedEvent for an authenticated event the channel does not use.
        A connector without sub-routes or GET challenges refuses them here (PayloadError)."""
        raise PayloadError(f"{self.kind} channels take no webhooks")

    def answer(self, request: WebhookRequest) -> WebhookAnswer | None:
        """What to answer a webhook that :meth:`parse` accepted, once its events are stored (e.g.
        empty TwiML, a voicemail prompt, X's CRC token); None answers our own JSON (202)."""
        return None

    def poll(self, cursor: dict[str, Any] | None) -> Iterator[PollBatch]:
        """Yield what is new since ``cursor`` in batches; see the module docstring."""
        return iter(())

    def watch(self, stop: threading.Event, notify: Callable[[], None]) -> None:
        """Block until ``stop`` is set, calling ``notify()`` whenever the source says something new
        arrived (e.g. IMAP IDLE), so the caller polls at once instead of waiting for the interval.
        Reconnects by itself; only pull channels with ``capabilities.watch`` implement it."""
        stop.wait()

    def send(self, message: OutboundMessage) -> SendResult:
        """Deliver a reply. Raises TransientError (retry later) or PermanentError."""
        raise NotImplementedError

    def find_sent(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """Whether an earlier attempt at ``message`` (made at or after ``since``) reached the
        provider: its result if so, None if the provider certainly does not have it. For channels
        that are not ``repeat_safe`` but can be asked (Twilio lists sent messages): the deliver job
        calls it before any attempt after the first, and sends only when it answers None. Raises
        TransientError when the provider cannot be asked now; NotImplementedError (the default)
        when the channel cannot tell, and then a reply taken over from a stopped worker fails with
        a reason the agent reads instead of being sent a second time."""
        raise NotImplementedError

    def send_limits(self, message: OutboundMessage) -> tuple[SendLimit, ...]:
        """The rates ``message`` must keep to (its sender's, its chat's); the deliver job paces the
        sends of every worker process by them. None by default."""
        return ()

    def fetch(self, ref: str, max_bytes: int) -> Fetched:
        """Download a :class:`RemoteAttachment` by its ``ref``. Raises TransientError (try again
        later) or PermanentError (larger than ``max_bytes``, gone, refused); a connector that
        announces remote attachments implements it."""
        raise PermanentError(f"{self.kind} channels hold no files to fetch")

    def fallback_channel(self) -> int | None:
        """Another channel (by id) that carries a reply when the customer is no longer here to
        read it on this one (web chat: the shop's email channel once the visitor has left); None
        where the channel has no such thing. The deliver job asks the store whether the customer
        is here (``store.webchat.present``) before using it."""
        return None

    def new_external_id(self, message_id: int) -> str | None:
        """An external id to give an outbound message before it is sent, or None."""
        return None

    def check(self) -> Mapping[str, Any] | None:
        """Test the credentials against the service. Raises ConfigError saying what failed. May
        return settings learned from the service (a bot's name), saved with the channel's."""
        return None

    def webhook_setup(self, url: str) -> None:
        """Register ``url`` (this channel's public webhook URL) with the provider where the channel
        needs that (e.g. Telegram's setWebhook). Called when the channel is saved, after
        :meth:`check`; must be safe to call again with the same URL. Raises ConfigError."""

    @classmethod
    def webhook_urls(cls, config: Mapping[str, Any], url: str) -> dict[str, str]:
        """The URLs the provider must call for a channel with these (public) settings, by what
        each is for, shown to the admin to set by hand where the channel does not set them itself;
        ``url`` is the channel's webhook URL."""
        return {"webhook": url}

    def webhook_teardown(self) -> None:
        """The channel was deleted: unregister its webhook at the provider where ``webhook_setup``
        registered one (Telegram's deleteWebhook), so the provider stops calling a URL that now
        answers 404. Raises ConnectorError saying what failed; the channel stays deleted."""


def parse_config(connector: type[Connector], values: Mapping[str, Any]) -> ChannelConfig:
    """Validate a channel's settings, with readable errors."""
    from pydantic import ValidationError

    try:
        return connector.Config.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(problems) from None
