"""A stand-in for the Telegram Bot API on loopback, which the real python-telegram-bot talks to.

What it does as Telegram does (see ../shared/FACTS.md): ``/bot<token>/<method>`` takes form,
multipart or JSON parameters and answers ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code", "description"[, "parameters"]}``; getMe; getUpdates long polling with offset
confirmation (409 while a webhook is set, and for a poll overtaken by a newer one); setWebhook /
deleteWebhook, after which updates are POSTed to the webhook one at a time, in order, with the
secret token header, again until answered 2xx (a method in the answer's body is run, as Telegram
does); sendMessage / sendPhoto / sendDocument; getFile and ``/file/bot<token>/<path>``;
answerCallbackQuery. Flood limits: more than ``bot_rate`` sends within any second for a bot, or two
to one chat within ``chat_gap`` seconds, are refused with 429 and ``parameters.retry_after``.
A chat can be made to have blocked the bot (403). Telegram asks https of webhooks; the stand-in
also takes http on loopback, where the tests run.

The test side: :meth:`FakeTelegram.add_bot`, :meth:`push` (an update from a customer),
:meth:`redeliver`, :meth:`block`, :meth:`add_file`, and what was sent in :attr:`Bot.sent`.
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import http.server
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx


@dataclass
class Bot:
    token: str
    id: int
    username: str
    first_name: str
    webhook_url: str = ""
    secret_token: str = ""
    updates: list[dict[str, Any]] = field(default_factory=list)  # not yet confirmed, in order
    sent: list[dict[str, Any]] = field(default_factory=list)  # what the bot sent, as Telegram took it
    answered: list[str] = field(default_factory=list)  # callback query ids answered
    webhook_answers: list[int] = field(default_factory=list)  # HTTP statuses of webhook deliveries
    blocked: set[int] = field(default_factory=set)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (path, data)
    sends: collections.deque[float] = field(default_factory=collections.deque)
    last_to_chat: dict[int, float] = field(default_factory=dict)
    # The last message id of each chat: as in Telegram, one sequence per chat for both sides.
    last_message_id: dict[int, int] = field(default_factory=dict)
    poll_generation: int = 0
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    # Methods the test makes fail: method -> (error_code, description), answered as Telegram answers errors.
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


class FakeTelegram:
    def __init__(self, *, bot_rate: int = 30, chat_gap: float = 0.9) -> None:
        self.bot_rate, self.chat_gap = bot_rate, chat_gap
        self.bots: dict[str, Bot] = {}
        self.cond = threading.Condition()
        self.too_many = 0  # 429s answered
        self.flood_next = 0  # sends to refuse with 429 next, however far apart they come
        self.refusals: collections.Counter[str] = collections.Counter()  # 429s by limit: "bot", "chat"
        self.refused_at: list[float] = []  # when each 429 was answered (time.monotonic)
        # Called with (bot, updates) once getUpdates has answered with updates: a test's fault injection.
        self.after_updates: Any = None
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(100_000)
        self._closed = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body in one write (two small writes meet delayed ACKs: 40 ms)

            def do_GET(self) -> None:
                outer._serve(self)

            def do_POST(self) -> None:
                outer._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._delivery = threading.Thread(target=self._deliver_webhooks, daemon=True)
        self._delivery.start()

    # -- the test's side ------------------------------------------------------------------------

    def add_bot(self, username: str = "shop_bot", first_name: str = "Shop") -> str:
        bot_id = 7_000_000_000 + next(self._ids)
        token = f"{bot_id}:AAH-fake-{username}-{bot_id % 1000:03d}"
        self.bots[token] = Bot(token, bot_id, username, first_name)
        return token

    def push(self, token: str, update: dict[str, Any]) -> int:
        """A customer's update, numbered as Telegram numbers them; ``update`` without ``update_id``."""
        with self.cond:
            update = {"update_id": next(self._update_ids), **update}
            bot = self.bots[token]
            bot.updates.append(update)
            message = update.get("message") or update.get("edited_message")
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                self.note_message(token, message["chat"].get("id"), int(message.get("message_id", 0)))
            self.cond.notify_all()
        return update["update_id"]

    def note_message(self, token: str, chat: int, message_id: int) -> None:
        """A customer's message the chat holds (one posted to a webhook past the stand-in): the
        bot's next message in that chat is numbered after it, as Telegram numbers them."""
        bot = self.bots[token]
        bot.last_message_id[chat] = max(bot.last_message_id.get(chat, 0), message_id)

    def redeliver(self, token: str, update: dict[str, Any]) -> None:
        """The same update (with its update_id) sent again, as after a lost acknowledgement."""
        with self.cond:
            self.bots[token].updates.append(update)
            self.cond.notify_all()

    def block(self, token: str, chat_id: int) -> None:
        self.bots[token].blocked.add(chat_id)

    def add_file(self, token: str, data: bytes, path: str = "photos/file_0.jpg") -> tuple[str, str]:
        """A file Telegram holds: its (file_id, file_unique_id)."""
        file_id = f"AgACAgIAAxk-{next(self._ids)}"
        self.bots[token].files[file_id] = (path, data)
        return file_id, f"AQAD{file_id[-6:]}"

    def pending(self, token: str) -> int:
        with self.cond:
            return len(self.bots[token].updates)

    def close(self) -> None:
        self._closed = True
        with self.cond:
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the Bot API's side -----------------------------------------------------------------------

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        path = unquote(parts.path)
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        try:
            if path.startswith("/file/bot"):
                token, _, path = path[len("/file/bot"):].partition("/")
                bot = self._bot(token)
                data = next((d for p, d in bot.files.values() if p == path), None)
                if data is None:
                    raise ApiError(404, "Not Found")
                return _answer(request, 200, data, "application/octet-stream")
            token, _, method = path.removeprefix("/bot").partition("/")
            bot = self._bot(token)
            params = _params(parts.query, request.headers.get("content-type", ""), body)
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            bot.calls[method] += 1
            if method in bot.refuse:
                raise ApiError(*bot.refuse[method])
            result = handler(bot, params)
            payload: dict[str, Any] = {"ok": True, "result": result}
            status = 200
            if method == "getUpdates" and result and self.after_updates is not None:
                _answer(request, status, json.dumps(payload).encode(), "application/json")
                request.wfile.flush()
                self.after_updates(bot, result)
                return
        except ApiError as exc:
            status = exc.code
            payload = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.parameters:
                payload["parameters"] = exc.parameters
        _answer(request, status, json.dumps(payload).encode(), "application/json")

    def _bot(self, token: str) -> Bot:
        bot = self.bots.get(token)
        if bot is None:
            raise ApiError(401, "Unauthorized")
        return bot

    def _m_getMe(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _m_getUpdates(self, bot: Bot, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = min(100, int(params.get("limit") or 100))
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self.cond:
            if bot.webhook_url:
                raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                    "use deleteWebhook to delete the webhook first")
            bot.poll_generation += 1
            mine = bot.poll_generation
            self.cond.notify_all()
            if offset:
                bot.updates = [u for u in bot.updates if u["update_id"] >= offset]  # confirmed
            while True:
                if bot.poll_generation != mine:
                    raise ApiError(409, "Conflict: terminated by other getUpdates request; make sure that only "
                                        "one bot instance is running")
                if bot.webhook_url:
                    return []
                ready = sorted({u["update_id"]: u for u in bot.updates}.values(), key=lambda u: u["update_id"])
                if ready or self._closed or time.monotonic() >= deadline:
                    return ready[:limit]
                self.cond.wait(max(0.0, deadline - time.monotonic()))

    def _m_setWebhook(self, bot: Bot, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        host = urlsplit(url).hostname or ""
        if url and not (url.startswith("https://") or host in ("127.0.0.1", "localhost")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        with self.cond:
            bot.webhook_url, bot.secret_token = url, str(params.get("secret_token") or "")
            if _true(params.get("drop_pending_updates")):
                bot.updates.clear()
            self.cond.notify_all()
        return True

    def _m_deleteWebhook(self, bot: Bot, params: dict[str, Any]) -> bool:
        with self.cond:
            bot.webhook_url = bot.secret_token = ""
            if _true(params.get("drop_pending_updates")):
                bot.updates.clear()
        return True

    def _m_getWebhookInfo(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": bot.webhook_url, "has_custom_certificate": False, "pending_update_count": len(bot.updates)}

    def _m_sendMessage(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._sent(bot, params, {"text": text})

    def _m_sendPhoto(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        name, data = _upload(params, "photo")
        return self._sent(bot, params, {"photo": [{"file_id": f"sent-{len(data)}", "file_unique_id": "x",
                                                   "width": 1, "height": 1, "file_size": len(data)}]},
                          upload=(name, data))

    def _m_sendDocument(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        name, data = _upload(params, "document")
        return self._sent(bot, params, {"document": {"file_id": f"sent-{len(data)}", "file_unique_id": "y",
                                                     "file_name": name, "file_size": len(data)}},
                          upload=(name, data))

    def _sent(self, bot: Bot, params: dict[str, Any], content: dict[str, Any],
              upload: tuple[str, bytes] | None = None) -> dict[str, Any]:
        try:
            chat = int(params["chat_id"])
        except (KeyError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        with self.cond:
            # Stamped under the lock: the window holds sends in the order they were counted. A stamp
            # taken before it (as this did) let a send counted later carry an earlier time, so one
            # counted earlier saw it in its window: a window up to the lock's wait longer than 1 s.
            now = time.monotonic()
            if chat in bot.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            while bot.sends and bot.sends[0] <= now - 1.0:
                bot.sends.popleft()
            flooded = self.flood_next > 0  # a test's "the next send meets flood control", whatever the timing
            self.flood_next -= flooded
            if flooded or len(bot.sends) >= self.bot_rate or now - bot.last_to_chat.get(chat, -10.0) < self.chat_gap:
                self.too_many += 1
                self.refusals["bot" if len(bot.sends) >= self.bot_rate else "chat"] += 1
                self.refused_at.append(now)
                raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
            bot.sends.append(now)
            bot.last_to_chat[chat] = now
            message_id = bot.last_message_id[chat] = bot.last_message_id.get(chat, 0) + 1
            bot.sent.append({"chat_id": chat, "message_id": message_id, "at": now, **content,
                             **({"filename": upload[0], "data": upload[1]} if upload else {})})
        return {"message_id": message_id, "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "Customer"},
                "from": {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username},
                **content}

    def _m_getFile(self, bot: Bot, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        if file_id not in bot.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = bot.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id[-6:]}", "file_size": len(data), "file_path": path}

    def _m_answerCallbackQuery(self, bot: Bot, params: dict[str, Any]) -> bool:
        with self.cond:
            bot.answered.append(str(params.get("callback_query_id")))
        return True

    # -- webhooks ---------------------------------------------------------------------------------

    def _deliver_webhooks(self) -> None:
        """Each bot's updates to its webhook, one at a time and in order, until answered 2xx."""
        client = httpx.Client(timeout=30)
        while not self._closed:
            work = None
            with self.cond:
                for bot in self.bots.values():
                    if bot.webhook_url and bot.updates:
                        work = (bot, bot.webhook_url, bot.secret_token, bot.updates[0])
                        break
                if work is None:
                    self.cond.wait(0.5)
                    continue
            bot, url, secret, update = work
            headers = {"Content-Type": "application/json"}
            if secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            try:
                answer = client.post(url, content=json.dumps(update).encode(), headers=headers)
                status = answer.status_code
            except httpx.HTTPError:
                status, answer = 0, None
            with self.cond:
                bot.webhook_answers.append(status)
                if 200 <= status < 300:
                    if bot.updates and bot.updates[0] is update:
                        bot.updates.pop(0)
                    self._run_answer(bot, answer)
            if not 200 <= status < 300:
                time.sleep(0.2)

    def _run_answer(self, bot: Bot, answer: httpx.Response | None) -> None:
        try:
            body = answer.json() if answer is not None else None
        except ValueError:
            return
        if isinstance(body, dict) and body.get("method") == "answerCallbackQuery":
            bot.answered.append(str(body.get("callback_query_id")))


def _true(value: Any) -> bool:
    return value in (True, "true", "True", "1", 1)


def _answer(request: http.server.BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def _params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """The method's parameters from the query, a form, a JSON body or a multipart body (files as
    ``(filename, bytes)``)."""
    params: dict[str, Any] = dict(parse_qsl(query))
    if content_type.startswith("application/json") and body:
        params.update(json.loads(body))
    elif content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data = part.get_payload(decode=True) or b""
            params[name] = (filename, data) if filename else data.decode()
    elif body:
        params.update(parse_qsl(body.decode()))
    return params


def _upload(params: dict[str, Any], name: str) -> tuple[str, bytes]:
    value = params.get(name)
    if isinstance(value, str) and value.startswith("attach://"):
        value = params.get(value[len("attach://"):])
    if not isinstance(value, tuple):
        raise ApiError(400, f"Bad Request: there is no {name} in the request")
    return value
