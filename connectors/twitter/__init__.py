"""The X (Twitter) channel: mentions and direct messages of the shop's account, API v2 via tweepy.

In: polling (``poll``: mentions by ``since_id``, DMs by the ids already seen; see
:mod:`connectors.twitter.poll`) and, where the channel has ``webhooks: true``, Account Activity
webhooks (``GET /webhooks/{id}?crc_token=`` answered with the CRC token, POSTs verified with
``x-twitter-webhooks-signature``). Polling goes on beside webhooks, as the fallback; the two meet
on the same external ids, so a message is stored once.

Out: a conversation's thread decides how a reply goes (:func:`public`): a DM conversation gets a
DM to the customer (``create_direct_message(participant_id=...)``, 10,000 characters), a mention
thread a public reply to the customer's latest tweet in it (``create_tweet(in_reply_to_tweet_id=
...)``, 280 characters as X weighs them (:mod:`.length`), refused before it is stored when longer:
:meth:`capabilities_for`). A
conversation moved to DMs (:meth:`direct_thread`) has the DM thread's key from then on.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import urlsplit

import tweepy

from connectors.base import (
    Capabilities,
    Connector,
    Event,
    Fetched,
    OutboundMessage,
    PollBatch,
    SendLimit,
    SendResult,
    WebhookAnswer,
    WebhookRequest,
)
from connectors.errors import AuthError, ConfigError, PayloadError, PermanentError, UnsupportedEvent
from connectors.twitter import api, events, poll
from connectors.twitter.config import TwitterConfig
from connectors.twitter.length import TWEET_LENGTH, TweetCapabilities

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
DM_LENGTH = 10_000
# X's limits per account: 100 tweets and 200 DMs in 15 minutes (FACTS.md), as even spacing.
TWEETS_PER_SECOND, DMS_PER_SECOND = 100 / 900, 200 / 900
MEDIA_HOSTS = (".twitter.com", ".twimg.com", ".x.com")  # where X's media live: fetch from nowhere else


def signature(consumer_secret: str, data: bytes) -> str:
    """``sha256=`` + base64 HMAC-SHA256: X's CRC response token and its webhook signature."""
    return "sha256=" + base64.b64encode(hmac.new(consumer_secret.encode(), data, hashlib.sha256).digest()).decode()


def public(thread_key: str | None, in_reply_to: str | None) -> bool:
    """Whether a reply goes out as a public tweet (a mention thread) rather than a DM."""
    if thread_key and thread_key.startswith(events.DM_THREAD):
        return False
    if thread_key and thread_key.startswith(events.THREAD):
        return True
    return bool(in_reply_to and in_reply_to.startswith(events.TWEET))


class TwitterConnector(Connector):
    kind: ClassVar[str] = "twitter"
    Config: ClassVar[type[TwitterConfig]] = TwitterConfig
    # A killed poller is replaced within poll_lease (renewed while a poll runs: see Capabilities).
    capabilities: ClassVar[Capabilities] = Capabilities(push=True, pull=True, poll_interval=60.0, poll_lease=30.0,
                                                        max_text_length=DM_LENGTH)
    config: TwitterConfig

    @classmethod
    def capabilities_for(cls, thread_key: str | None, in_reply_to: str | None) -> Capabilities:
        if public(thread_key, in_reply_to):
            return TweetCapabilities(**{**dataclasses.asdict(cls.capabilities), "max_text_length": TWEET_LENGTH})
        return cls.capabilities

    def direct_thread(self, external_id: str) -> str | None:
        return events.dm_thread(external_id, self.config.user_id)

    @cached_property
    def client(self) -> tweepy.Client:
        return api.client(self.config)

    # -- in: webhooks -----------------------------------------------------------------------------

    def parse(self, request: WebhookRequest) -> list[Event]:
        """Account Activity: a GET is X's CRC check (answered by :meth:`answer`; the token proves
        we hold the app's secret, so it needs no signature of its own), a POST its events, signed."""
        if request.method != "GET":
            given = request.headers.get(SIGNATURE_HEADER, "")
            expected = signature(self.config.consumer_secret.get_secret_value(), request.body)
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise AuthError(f"missing or wrong {SIGNATURE_HEADER}", status=403)
        if not self.config.webhooks:
            raise PayloadError("this X channel takes no webhooks (its setting 'webhooks' is off)")
        if request.route:
            raise PayloadError(f"X channels have no webhook /{request.route}")
        if request.method == "GET":
            if not request.query.get("crc_token"):
                raise PayloadError("a CRC check needs crc_token")
            return []
        try:
            body = json.loads(request.body)
        except ValueError:
            raise PayloadError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise PayloadError("the body is not a JSON object")
        found = events.activity(body, self.config.user_id)
        if found is None:
            raise UnsupportedEvent(next((k for k in body if k.endswith("_events")), "unknown"))
        return list(found)

    def answer(self, request: WebhookRequest) -> WebhookAnswer | None:
        if request.method != "GET":
            return None
        token = signature(self.config.consumer_secret.get_secret_value(), request.query["crc_token"].encode())
        return WebhookAnswer(json.dumps({"response_token": token}).encode())

    # -- in: polling ------------------------------------------------------------------------------

    def poll(self, cursor: dict[str, Any] | None) -> Iterator[PollBatch]:
        mentions = self._fetch_mentions(cursor or {}) if self.config.mentions else None
        dms = self._fetch_dms if self.config.direct_messages else None
        days = self.config.import_since_days
        first = datetime.now(UTC) - timedelta(days=days) if days is not None else None
        return poll.poll(mentions, dms, self.config.user_id, cursor, first_since=first)

    def _fetch_mentions(self, cursor: dict[str, Any]) -> poll.Fetch:
        since = cursor.get("mentions_since_id")
        # The app's bearer token where given (its own, larger, rate limit), else user context.
        user_auth = self.config.bearer_token is None

        def fetch(token: str | None) -> dict[str, Any]:
            return api.read("reading mentions", lambda: self.client.get_users_mentions(
                self.config.user_id, since_id=since, pagination_token=token, max_results=poll.PAGE_SIZE,
                tweet_fields=api.TWEET_FIELDS, expansions="author_id,attachments.media_keys",
                user_fields=api.USER_FIELDS, media_fields=api.MEDIA_FIELDS, user_auth=user_auth))
        return fetch

    def _fetch_dms(self, token: str | None) -> dict[str, Any]:
        return api.read("reading direct messages", lambda: self.client.get_direct_message_events(
            pagination_token=token, max_results=poll.PAGE_SIZE, event_types="MessageCreate",
            dm_event_fields=api.DM_FIELDS, expansions="sender_id,attachments.media_keys",
            user_fields=api.USER_FIELDS, media_fields=api.MEDIA_FIELDS, user_auth=True))

    # -- out --------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        if not public(message.thread_key, message.in_reply_to):
            if not message.to.external_id.isdigit():
                raise PermanentError("the customer has no X account id to write to")
            body = api.call("sending the DM", lambda: self.client.create_direct_message(
                participant_id=message.to.external_id, text=message.text, user_auth=True), sending=True)
            event_id = (body.get("data") or {}).get("dm_event_id")
            return SendResult(external_id=f"{events.DM}{event_id}" if event_id else None)
        target = message.in_reply_to or ""
        if not target.startswith(events.TWEET):
            raise PermanentError("there is no tweet of the customer's in this conversation to reply to")
        body = api.call("posting the reply", lambda: self.client.create_tweet(
            text=message.text, in_reply_to_tweet_id=target.removeprefix(events.TWEET), user_auth=True), sending=True)
        tweet_id = (body.get("data") or {}).get("id")
        return SendResult(external_id=f"{events.TWEET}{tweet_id}" if tweet_id else None)

    def send_limits(self, message: OutboundMessage) -> tuple[SendLimit, ...]:
        if public(message.thread_key, message.in_reply_to):
            return (SendLimit(f"twitter:{self.config.user_id}:tweets", TWEETS_PER_SECOND),)
        return (SendLimit(f"twitter:{self.config.user_id}:dms", DMS_PER_SECOND),)

    def fetch(self, ref: str, max_bytes: int) -> Fetched:
        """A tweet's or DM's media file, with the account's signature (DM media need it). Only
        from X's own hosts (or the configured API base): a file address is never a way to send
        the account's signature elsewhere."""
        parts = urlsplit(ref)
        host = parts.hostname or ""
        ours = host == urlsplit(self.config.api_base_url).hostname
        if parts.scheme not in ("https", "http") or not (ours or host.endswith(MEDIA_HOSTS)):
            raise PermanentError("not a file of X's")
        auth = tweepy.OAuth1UserHandler(self.config.consumer_key, self.config.consumer_secret.get_secret_value(),
                                        self.config.access_token,
                                        self.config.access_token_secret.get_secret_value()).apply_auth()
        data, content_type = api.download(self.client.session, ref, auth, max_bytes, self.config.timeout)
        return Fetched(data=data, content_type=content_type)

    def check(self) -> None:
        try:
            body = api.call("checking the account", lambda: self.client.get_me(user_fields="username", user_auth=True))
        except PermanentError as exc:
            raise ConfigError(exc.reason) from None
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the network: the admin reads why
            raise ConfigError(str(exc)) from None
        me = body.get("data") or {}
        if str(me.get("id")) != self.config.user_id:
            raise ConfigError(f"the access token belongs to @{me.get('username')} (user id {me.get('id')}), "
                              f"not to user_id {self.config.user_id}")
