"""A local stand-in for Twilio's REST API: a real HTTP server on loopback that the real twilio
``Client`` talks to (``api_base_url``).

- ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form, Basic auth): takes a message, answers
  Twilio's JSON (201) or its error body for a code named in ``errors_for`` (``{"code", "message",
  "more_info", "status"}``); above ``rate`` messages/s per sender (a token bucket, as Twilio's
  queue would throttle) answers 429 with code 20429; ``drop_after_accept`` closes the connection
  after storing the message, without an answer.
- ``GET .../Messages.json?To=&From=&DateSent>=&DateSent<=``: the messages taken, newest first.
- Status callbacks: each message's ``StatusCallback`` gets the statuses of ``callbacks`` (default
  sent, delivered), signed with the account's auth token, posted by a thread in the order given
  (``callbacks`` may name them out of order); :meth:`post_status` posts one by hand.
- Media on sends: each ``MediaUrl`` of a message taken is fetched (no credentials, as Twilio
  fetches them) by the thread that then posts its callbacks; ``Sent.fetched`` keeps what each fetch
  got (status, bytes, content type). A fetch that fails fails the message, as Twilio does: its
  callback says ``failed`` with ErrorCode 11200 instead of the statuses of ``callbacks``.
- Numbers: ``GET .../IncomingPhoneNumbers.json?PhoneNumber=`` lists the account's numbers
  (:meth:`add_number`), ``POST .../IncomingPhoneNumbers/{sid}.json`` updates one's ``SmsUrl``,
  ``VoiceUrl``, ... (or answers the error code in ``number_errors``, for a test).
- Media: :meth:`add_media` serves bytes under ``/2010-04-01/Accounts/{sid}/...`` with Basic auth,
  which redirects (302) to an unauthenticated storage URL, as Twilio does.

:func:`sign` is Twilio's signature algorithm written out (not the library's), for the tests'
webhooks: base64(HMAC-SHA1(token, url + name1 + value1 + ... with names sorted)).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

ERROR_STATUS = {20429: 429, 20003: 401, 21211: 400, 21610: 400, 21614: 400, 63016: 400, 63014: 400}
GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
          "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")


def sign(token: str, url: str, params: Mapping[str, str | Sequence[str]]) -> str:
    """Twilio's X-Twilio-Signature for a request to ``url`` with form ``params``."""
    text = url
    for name in sorted(params):
        values = params[name]
        for value in sorted([values] if isinstance(values, str) else values):
            text += name + value
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def segments(body: str) -> int:
    """How many SMS segments Twilio bills a body as (GSM-7: 160 / 153 a part; else UCS-2: 70 / 67)."""
    single, part = (160, 153) if set(body) <= GSM else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Sent:
    sid: str
    form: dict[str, str]
    created: datetime
    status: str = "queued"
    at: float = field(default_factory=time.monotonic)  # when it was taken, for rates
    media_urls: list[str] = field(default_factory=list)  # the MediaUrl fields, in order
    fetched: list[tuple[int, bytes, str]] = field(default_factory=list)  # (status, data, content type) each

    def resource(self, account: str) -> dict[str, Any]:
        body = self.form.get("Body", "")
        return {
            "sid": self.sid, "account_sid": account, "to": self.form.get("To"), "from": self.form.get("From"),
            "messaging_service_sid": self.form.get("MessagingServiceSid"), "body": body,
            "status": self.status, "num_segments": str(segments(body) if body else 1),
            "num_media": str(len(self.media_urls)),
            "direction": "outbound-api", "api_version": "2010-04-01", "price": None, "price_unit": "USD",
            "error_code": None, "error_message": None,
            "date_created": format_datetime(self.created), "date_updated": format_datetime(self.created),
            "date_sent": None, "uri": f"/2010-04-01/Accounts/{account}/Messages/{self.sid}.json",
            "subresource_uris": {},
        }


@dataclass
class FakeTwilio:
    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    rate: float | None = None  # messages a second per sender; None: no limit
    callbacks: list[str] = field(default_factory=lambda: ["sent", "delivered"])
    callback_delay: float = 0.05
    fetch_delay: float = 0.0  # seconds between taking a message and fetching its media

    def __post_init__(self) -> None:
        self.messages: list[Sent] = []
        self.errors_for: dict[str, int] = {}  # To -> error code to answer
        self.drop_after_accept = 0  # the next N accepted messages get no answer
        self.refused_429 = 0
        self.callback_answers: list[int] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.numbers: dict[str, dict[str, Any]] = {}  # PN sid -> the IncomingPhoneNumber resource
        self.number_errors: list[int] = []  # error codes the next number updates answer, in turn
        self.lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}"

    def config(self, **extra: Any) -> dict[str, Any]:
        """A channel's settings pointing at this stand-in."""
        return {"account_sid": self.account_sid, "auth_token": self.auth_token, "api_base_url": self.url,
                "from_number": "+15550001111", **extra}

    # -- media ---------------------------------------------------------------------------------
    def add_media(self, data: bytes, content_type: str, path: str | None = None) -> str:
        """A file behind the account's Basic auth (redirected to storage); its URL."""
        path = path or f"{self.base}/Messages/{new_sid('MM')}/Media/{new_sid('ME')}"
        self.media[path] = (data, content_type)
        return self.url + path

    # -- numbers -------------------------------------------------------------------------------
    def add_number(self, phone_number: str = "+15550001111", **fields: Any) -> dict[str, Any]:
        """A number of the account, as Twilio lists it (``sms_url`` etc. may be given)."""
        sid = new_sid("PN")
        resource = {"sid": sid, "account_sid": self.account_sid, "phone_number": phone_number,
                    "friendly_name": phone_number, "sms_url": "https://demo.twilio.com/welcome/sms/reply",
                    "sms_method": "POST", "voice_url": "", "voice_method": "POST", "status_callback": "",
                    "capabilities": {"sms": True, "mms": True, "voice": True}, "api_version": "2010-04-01",
                    "uri": f"{self.base}/IncomingPhoneNumbers/{sid}.json", **fields}
        self.numbers[sid] = resource
        return resource

    def update_number(self, sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if sid not in self.numbers:
                return 404, _error(20404, "The requested resource was not found")
            if self.number_errors:
                code = self.number_errors.pop(0)
                return ERROR_STATUS.get(code, 400), _error(code, f"error {code}")
            fields = {"SmsUrl": "sms_url", "SmsMethod": "sms_method", "VoiceUrl": "voice_url",
                      "VoiceMethod": "voice_method", "StatusCallback": "status_callback"}
            for name, value in form.items():
                if name in fields:
                    self.numbers[sid][fields[name]] = value
            return 200, dict(self.numbers[sid])

    # -- callbacks -----------------------------------------------------------------------------
    def post_status(self, message: Sent, status: str, error_code: int | None = None) -> int:
        url = message.form.get("StatusCallback")
        assert url, "the message named no StatusCallback"
        params = {"MessageSid": message.sid, "SmsSid": message.sid, "AccountSid": self.account_sid,
                  "MessageStatus": status, "SmsStatus": status, "To": message.form.get("To", ""),
                  "From": message.form.get("From", ""), "ApiVersion": "2010-04-01"}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        with self.lock:
            message.status = status  # the resource shows the latest status, as Twilio's does
        answer = httpx.post(url, data=params, headers={"X-Twilio-Signature": sign(self.auth_token, url, params)},
                            timeout=10)
        with self.lock:
            self.callback_answers.append(answer.status_code)
        return answer.status_code

    def _fetch_media(self, message: Sent) -> bool:
        """Fetch the message's files as Twilio does; False when one could not be had."""
        time.sleep(self.fetch_delay)
        for url in message.media_urls:
            try:
                got = httpx.get(url, timeout=10, follow_redirects=True)
                result = (got.status_code, got.content, got.headers.get("content-type", ""))
            except httpx.HTTPError:
                result = (0, b"", "")
            with self.lock:
                message.fetched.append(result)
        return all(status == 200 for status, _, _ in message.fetched)

    def _callbacks(self, message: Sent) -> None:
        if message.media_urls and not self._fetch_media(message):
            with self.lock:
                message.status = "failed"
            if message.form.get("StatusCallback"):
                time.sleep(self.callback_delay)
                with contextlib.suppress(httpx.HTTPError):
                    self.post_status(message, "failed", 11200)
            return
        if not message.form.get("StatusCallback"):
            return
        for status in list(self.callbacks):
            time.sleep(self.callback_delay)
            with contextlib.suppress(httpx.HTTPError):
                self.post_status(message, status)

    # -- the REST API --------------------------------------------------------------------------
    def take(self, form: dict[str, str], media_urls: Sequence[str] = ()) -> tuple[int, dict[str, Any], Sent | None]:
        sender = form.get("From") or form.get("MessagingServiceSid") or ""
        to = form.get("To", "")
        with self.lock:
            if self.rate is not None and not self._token(sender):
                self.refused_429 += 1
                return 429, _error(20429, "Too Many Requests"), None
            code = self.errors_for.get(to.removeprefix("whatsapp:"))
            if code is not None:
                return ERROR_STATUS.get(code, 400), _error(code, f"error {code}"), None
            if not to.removeprefix("whatsapp:").startswith("+") or not (
                    form.get("Body") or form.get("ContentSid") or media_urls):
                return 400, _error(21211 if not to else 21602, "invalid To or no Body"), None
            if len(media_urls) > (1 if to.startswith("whatsapp:") else 10):
                return 400, _error(21623, "too many media"), None
            sent = Sent(new_sid("SM"), form, datetime.now(UTC).replace(microsecond=0), media_urls=list(media_urls))
            self.messages.append(sent)
        if media_urls or (form.get("StatusCallback") and self.callbacks):
            threading.Thread(target=self._callbacks, args=(sent,), daemon=True).start()
        return 201, sent.resource(self.account_sid), sent

    def _token(self, sender: str) -> bool:
        assert self.rate is not None
        now = time.monotonic()
        tokens, last = self._buckets.get(sender, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[sender] = (tokens, now)
            return False
        self._buckets[sender] = (tokens - 1, now)
        return True

    def listing(self, query: dict[str, str]) -> dict[str, Any]:
        def keep(sent: Sent) -> bool:
            if "To" in query and sent.form.get("To") != query["To"]:
                return False
            if "From" in query and sent.form.get("From") != query["From"]:
                return False
            day = sent.created.date().isoformat()
            if "DateSent>" in query and day < query["DateSent>"][:10]:
                return False
            return not ("DateSent<" in query and day > query["DateSent<"][:10])

        with self.lock:
            found = [s.resource(self.account_sid) for s in reversed(self.messages) if keep(s)]
        size = int(query.get("PageSize", 50))
        return {"messages": found[:size], "uri": f"{self.base}/Messages.json", "page": 0, "page_size": size,
                "first_page_uri": f"{self.base}/Messages.json", "next_page_uri": None,
                "previous_page_uri": None, "start": 0, "end": max(0, len(found[:size]) - 1)}

    def authorised(self, header: str) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return hmac.compare_digest(header.encode(), expected.encode())


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up waiting (its timeout) is no error of the stand-in's."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": ERROR_STATUS.get(code, 400)}


def _handler(fake: FakeTwilio) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes, content_type: str = "application/json",
                    headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._answer(status, json.dumps(payload).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urlsplit(self.path).path
            numbers = f"{fake.base}/IncomingPhoneNumbers/"
            if path != f"{fake.base}/Messages.json" and not path.startswith(numbers):
                return self._json(404, _error(20404, "not found"))
            if not fake.authorised(self.headers.get("Authorization", "")):
                return self._json(401, _error(20003, "Authenticate"))
            if path.startswith(numbers):
                form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                return self._json(*fake.update_number(path.removeprefix(numbers).removesuffix(".json"), form))
            fields = parse_qs(body.decode(), keep_blank_values=True)
            form = {k: v[-1] for k, v in fields.items()}
            status, payload, sent = fake.take(form, fields.get("MediaUrl", []))
            if sent is not None:
                with fake.lock:
                    drop = fake.drop_after_accept > 0
                    fake.drop_after_accept -= drop
                if drop:  # taken, but the answer never comes back
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
            self._json(status, payload)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path.startswith("/storage/"):
                found = fake.media.get(parts.path.removeprefix("/storage"))
                if found is None:
                    return self._json(404, _error(20404, "not found"))
                return self._answer(200, found[0], found[1])
            if not fake.authorised(self.headers.get("Authorization", "")):
                return self._json(401, _error(20003, "Authenticate"))
            if parts.path == f"{fake.base}.json":
                return self._json(200, {"sid": fake.account_sid, "friendly_name": "Shop", "status": "active",
                                        "type": "Full", "uri": f"{fake.base}.json"})
            if parts.path == f"{fake.base}/Messages.json":
                query = {k.rstrip("="): v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                return self._json(200, fake.listing(query))
            if parts.path == f"{fake.base}/IncomingPhoneNumbers.json":
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with fake.lock:
                    found = [dict(n) for n in fake.numbers.values()
                             if query.get("PhoneNumber") in (None, n["phone_number"])]
                return self._json(200, {"incoming_phone_numbers": found, "page": 0, "page_size": 50, "start": 0,
                                        "end": max(0, len(found) - 1), "next_page_uri": None,
                                        "uri": f"{fake.base}/IncomingPhoneNumbers.json"})
            if parts.path in fake.media:
                return self._answer(302, b"", headers={"Location": f"{fake.url}/storage{parts.path}"})
            self._json(404, _error(20404, "not found"))

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def inbound(fake: FakeTwilio, url: str, params: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """A signed form webhook as Twilio would post it to ``url``: (body, headers)."""
    return urlencode(params).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                        "X-Twilio-Signature": sign(fake.auth_token, url, params)}
