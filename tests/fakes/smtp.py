"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, can refuse on demand and
can ask for a login.

    sink = SmtpSink(user="shop", password="pw")   # AUTH required (over plain text: loopback only)
    sink.fail_next(451, "4.7.1 Greylisted")          # the next DATA is answered 451
    sink.refuse_rcpt("x@example.com", 550, "5.1.1 User unknown")   # every RCPT TO:<x@...>
    sink.wait_for(1)[0].message                      # what arrived, parsed
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[return-value]


class SmtpSink:
    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.received: list[Received] = []
        self.refusals: list[tuple[int, str]] = []  # answers to give to the next DATA commands
        self.refused_rcpts: dict[str, tuple[int, str]] = {}  # address -> answer to its RCPT TO
        self.user, self.password = user, password
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                                  rcpt_options: list[str]) -> str:
                with sink._lock:
                    refusal = sink.refused_rcpts.get(address.lower())
                if refusal:
                    return f"{refusal[0]} {refusal[1]}"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                with sink._lock:
                    if sink.refusals:
                        code, text = sink.refusals.pop(0)
                        return f"{code} {text}"
                    sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                                  bytes(envelope.original_content or envelope.content)))
                return "250 OK queued"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
            return AuthResult(success=ok, handled=False)  # let aiosmtpd answer 235 or 535

        kwargs: dict[str, Any] = {}
        if user:
            kwargs = {"authenticator": authenticate, "auth_require_tls": False, "auth_required": True}
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def fail_next(self, code: int, text: str = "try again later") -> None:
        """Answer the next DATA with ``code text`` instead of taking the message."""
        with self._lock:
            self.refusals.append((code, text))

    def refuse_rcpt(self, address: str, code: int, text: str) -> None:
        """Answer ``RCPT TO:<address>`` with ``code text`` from now on."""
        with self._lock:
            self.refused_rcpts[address.lower()] = (code, text)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"SMTP sink got {len(self.received)} messages, expected {count}")
            time.sleep(0.05)
        return self.received

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": "none"}
        if self.user:
            values.update(smtp_username=self.user, smtp_password=self.password)
        return values

    def stop(self) -> None:
        self.controller.stop()
