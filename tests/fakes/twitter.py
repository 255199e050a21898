"""A stand-in for X's API v2 on loopback: a real HTTP server that tweepy's own client reaches
(the channel's ``api_base_url``, which the connector's mounted adapter sends tweepy's requests to).

It answers what the X channel uses, in X's shapes: ``GET /2/users/me``, ``GET
/2/users/:id/mentions`` (``since_id``, ``max_results``, ``pagination_token``, newest first),
``GET /2/dm_events`` (pages, newest first), ``POST /2/tweets`` and ``POST
/2/dm_conversations/with/:id/messages``. Every answer carries ``x-rate-limit-limit``,
``-remaining`` and ``-reset`` of a per-endpoint window; ``limit(endpoint, times, reset_in)``
makes the next calls answer 429 as X does; errors have X's problem bodies.

    x = FakeX(); x.mention(author, "@shop where is my order?"); x.dm(author, "hi")
    config = x.channel_config()          # what an X channel needs to talk to it
    x.tweets / x.dms                     # what omnidesk sent
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHOP_ID = "1500000000000000001"
CONSUMER_KEY, CONSUMER_SECRET = "fake-consumer-key", "fake-consumer-secret"
ACCESS_TOKEN, ACCESS_SECRET = "1500000000000000001-fakeaccesstoken", "fake-access-secret"
BEARER = "fake-bearer-token"

# Endpoint names for rate limits, with X's limits per 15-minute window.
WINDOWS = {"mentions": 450, "dm_events": 15, "tweets": 100, "dm_send": 200, "me": 75}


def problem(status: int, title: str, detail: str, kind: str = "about:blank", **extra: Any) -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status, **extra}


@dataclass
class Limit:
    remaining: int
    reset: float
    forced: int = 0  # calls still to answer 429
    after: int = 0  # calls still answered normally before those


@dataclass
class FakeX:
    page_delay: float = 0.0  # seconds before answering each read (a slow X, for kill tests)
    # The shop's account; a test of its own, for one of its own (send pacing is per account).
    shop_id: str = SHOP_ID
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    mentions: list[dict[str, Any]] = field(default_factory=list)  # tweets mentioning the shop
    events: list[dict[str, Any]] = field(default_factory=list)  # DM events, oldest first
    tweets: list[dict[str, Any]] = field(default_factory=list)  # what omnidesk posted
    dms: list[dict[str, Any]] = field(default_factory=list)  # what omnidesk sent by DM
    closed_dms: set[str] = field(default_factory=set)  # users who take no DMs from the shop
    blocked_by: set[str] = field(default_factory=set)  # users who blocked the shop
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # DM media: path -> (type, bytes)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1_700_000_000_000_000_000, 1_000)
        self.limits: dict[str, Limit] = {}
        self.user(self.shop_id, "Shop", "shop")
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer._serve(self, "GET")

            def do_POST(self) -> None:
                outer._serve(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what customers do ------------------------------------------------------------------------

    def next_id(self) -> str:
        with self.lock:
            return str(next(self.ids))

    def user(self, user_id: str, name: str, username: str) -> str:
        self.users[user_id] = {"id": user_id, "name": name, "username": username}
        return user_id

    def mention(self, author: str, text: str, *, reply_to: str | None = None, conversation: str | None = None,
                tweet_id: str | None = None, at: datetime | None = None) -> dict[str, Any]:
        """A tweet by ``author`` mentioning the shop (a reply to ``reply_to`` when given)."""
        tweet_id = tweet_id or self.next_id()
        tweet: dict[str, Any] = {
            "id": tweet_id, "text": text, "author_id": author, "conversation_id": conversation or tweet_id,
            "created_at": _now(at), "lang": "en", "edit_history_tweet_ids": [tweet_id]}
        if reply_to:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": reply_to}]
            tweet["in_reply_to_user_id"] = self.shop_id
        with self.lock:
            self.mentions.append(tweet)
        return tweet

    def dm(self, sender: str, text: str, *, media: dict[str, Any] | None = None,
           at: datetime | None = None) -> dict[str, Any]:
        """A DM from ``sender`` to the shop."""
        event_id = self.next_id()
        event: dict[str, Any] = {
            "id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": sender,
            "dm_conversation_id": conversation_id(sender, self.shop_id), "created_at": _now(at),
            "participant_ids": [sender, self.shop_id]}
        if media:
            event["attachments"] = {"media_keys": [media["media_key"]]}
            event["_media"] = media
        with self.lock:
            self.events.append(event)
        return event

    def photo(self, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
        """A DM photo the stand-in holds, as X lists it in ``includes.media`` (its ``url`` needs
        the account's OAuth 1.0a signature, as X's ton.twitter.com does)."""
        key = f"3_{self.next_id()}"
        path = f"/1.1/ton/data/dm/{key}/photo.jpg"
        self.files[path] = (content_type, data)
        return {"media_key": key, "type": "photo", "url": self.url + path}

    def limit(self, endpoint: str, times: int = 1, reset_in: float = 5.0, *, after: int = 0) -> None:
        """After ``after`` more calls, the next ``times`` calls to ``endpoint`` answer 429, the
        window resetting ``reset_in`` s from now."""
        with self.lock:
            # Refused though the window showed room (another app of the account spent it, say).
            self.limits[endpoint] = Limit(remaining=WINDOWS[endpoint] if after else 0, reset=time.time() + reset_in,
                                          forced=times, after=after)

    def channel_config(self, **extra: Any) -> dict[str, Any]:
        return {"consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET, "access_token": ACCESS_TOKEN,
                "access_token_secret": ACCESS_SECRET, "bearer_token": BEARER, "user_id": self.shop_id,
                "api_base_url": self.url, **extra}

    def calls(self, endpoint_path: str) -> list[dict[str, list[str]]]:
        with self.lock:
            return [q for _, path, q in self.requests if path == endpoint_path]

    # -- the server -------------------------------------------------------------------------------

    def _serve(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, parts.path, query))
        if parts.path in self.files:
            self._file(handler, parts.path)
            return
        status, body, endpoint = self._route(method, parts.path, query, raw, handler.headers.get("authorization", ""))
        headers = self._window(endpoint, status) if endpoint else {}
        if status == 429:
            body = problem(429, "Too Many Requests", "Too Many Requests")
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json; charset=utf-8")
        handler.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _file(self, handler: http.server.BaseHTTPRequestHandler, path: str) -> None:
        auth = handler.headers.get("authorization", "")
        content_type, data = self.files[path]
        if not (auth.startswith("OAuth ") and f'oauth_consumer_key="{CONSUMER_KEY}"' in auth):
            content_type, data = "text/plain", b"Unauthorized"
            handler.send_response(401)
        else:
            handler.send_response(200)
        handler.send_header("content-type", content_type)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _window(self, endpoint: str, status: int) -> dict[str, str]:
        with self.lock:
            limit = self.limits.get(endpoint)
            if limit is None or limit.reset <= time.time():  # a new window
                limit = self.limits[endpoint] = Limit(remaining=WINDOWS[endpoint], reset=time.time() + 900)
            if status != 429:
                limit.remaining = max(0, limit.remaining - 1)
            return {"x-rate-limit-limit": str(WINDOWS[endpoint]), "x-rate-limit-remaining": str(limit.remaining),
                    "x-rate-limit-reset": str(int(limit.reset + 0.999))}

    def _limited(self, endpoint: str) -> bool:
        with self.lock:
            limit = self.limits.get(endpoint)
            if limit is not None and limit.forced > 0 and limit.reset > time.time():
                if limit.after > 0:
                    limit.after -= 1
                    return False
                limit.forced -= 1
                return True
            return False

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes,
               auth: str) -> tuple[int, dict[str, Any], str | None]:
        user_context = auth.startswith("OAuth ") and f'oauth_consumer_key="{CONSUMER_KEY}"' in auth
        app = auth == f"Bearer {BEARER}"
        if (found := re.fullmatch(r"/2/users/(\d+)/mentions", path)) and method == "GET":
            return self._answer("mentions", user_context or app, lambda: self._mentions(found[1], query))
        if path == "/2/dm_events" and method == "GET":
            return self._answer("dm_events", user_context, lambda: self._dm_events(query))
        if path == "/2/users/me" and method == "GET":
            return self._answer("me", user_context, lambda: (200, {"data": self.users[self.shop_id]}))
        if path == "/2/tweets" and method == "POST":
            return self._answer("tweets", user_context, lambda: self._tweet(json.loads(raw or b"{}")))
        if (found := re.fullmatch(r"/2/dm_conversations/with/(\d+)/messages", path)) and method == "POST":
            return self._answer("dm_send", user_context, lambda: self._send_dm(found[1], json.loads(raw or b"{}")))
        return 404, problem(404, "Not Found Error", f"no route {method} {path}"), None

    def _answer(self, endpoint: str, authorised: bool, make: Any) -> tuple[int, dict[str, Any], str | None]:
        if not authorised:
            return 401, problem(401, "Unauthorized", "Unauthorized"), None
        if self._limited(endpoint):
            return 429, {}, endpoint
        status, body = make()
        return status, body, endpoint

    def _page(self, items: list[dict[str, Any]], query: dict[str, list[str]],
              ) -> tuple[list[dict[str, Any]], str | None]:
        time.sleep(self.page_delay)
        size = min(100, max(1, int(query.get("max_results", ["10"])[0])))
        start = int(query.get("pagination_token", ["0"])[0] or 0)
        page = items[start:start + size]
        return page, str(start + size) if start + size < len(items) else None

    def _includes(self, ids: set[str], media: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"users": [self.users[i] for i in sorted(ids) if i in self.users]}
        if media:
            found["media"] = media
        return found

    def _mentions(self, user_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        since = int(query.get("since_id", ["0"])[0] or 0)
        with self.lock:
            newest_first = sorted((t for t in self.mentions if int(t["id"]) > since), key=lambda t: -int(t["id"]))
        page, token = self._page(newest_first, query)
        if not page:
            return 200, {"meta": {"result_count": 0}}
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
        if token:
            meta["next_token"] = token
        return 200, {"data": page, "includes": self._includes({t["author_id"] for t in page}), "meta": meta}

    def _dm_events(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            newest_first = sorted(self.events, key=lambda e: -int(e["id"]))
        page, token = self._page(newest_first, query)
        if not page:
            return 200, {"meta": {"result_count": 0}}
        data = [{k: v for k, v in e.items() if not k.startswith("_")} for e in page]
        media = [e["_media"] for e in page if "_media" in e]
        meta: dict[str, Any] = {"result_count": len(page)}
        if token:
            meta["next_token"] = token
        return 200, {"data": data, "includes": self._includes({e["sender_id"] for e in page}, media), "meta": meta}

    def _tweet(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(body.get("text") or "")
        if len(text) > 280:
            return 400, {"errors": [{"message": "Your Tweet text is too long."}], "title": "Invalid Request",
                         "detail": "One or more parameters to your request was invalid.",
                         "type": "https://api.twitter.com/2/problems/invalid-request"}
        parent = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if parent and not any(t["id"] == str(parent) for t in [*self.mentions, *self.tweets]):
            return 403, problem(403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not "
                                "visible to you.")
        if any(t["text"] == text for t in self.tweets):
            return 403, problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        tweet_id = self.next_id()
        with self.lock:
            self.tweets.append({"id": tweet_id, "text": text, "in_reply_to_tweet_id": parent,
                                "author_id": self.shop_id})
        return 201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}

    def _send_dm(self, participant: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if participant in self.blocked_by:
            return 403, problem(403, "Forbidden", "You cannot send messages to users who have blocked you.",
                                "https://api.twitter.com/2/problems/dm-permissions")
        if participant in self.closed_dms:
            return 403, problem(403, "Forbidden", "You cannot send messages to this user.",
                                "https://api.twitter.com/2/problems/dm-permissions")
        text = str(body.get("text") or "")
        if not text and not body.get("attachments"):
            return 400, {"errors": [{"message": "text or attachments is required"}], "title": "Invalid Request",
                         "detail": "One or more parameters to your request was invalid.",
                         "type": "https://api.twitter.com/2/problems/invalid-request"}
        event_id = self.next_id()
        conversation = conversation_id(participant, self.shop_id)
        with self.lock:
            self.dms.append({"to": participant, "text": text, "dm_event_id": event_id})
            # X lists the shop's own DMs among the events too: the poller must leave them out.
            self.events.append({"id": event_id, "event_type": "MessageCreate", "text": text, "sender_id": self.shop_id,
                                "dm_conversation_id": conversation, "created_at": _now()})
        return 201, {"data": {"dm_conversation_id": conversation, "dm_event_id": event_id}}


def conversation_id(one: str, other: str) -> str:
    low, high = sorted((one, other), key=int)
    return f"{low}-{high}"


def _now(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
