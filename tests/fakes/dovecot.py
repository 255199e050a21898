"""The Dovecot the email tests run against: ``tests.fakes.dovecot_server``'s throw-away server (one directory:
config, one passwd file per user, maildirs owned by uid 1000, log) plus what tests need of it, and
failing under CI (skipping elsewhere) when Dovecot is not installed."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fakes.dovecot_server import Dovecot as _Dovecot
from tests.fakes.dovecot_server import DovecotUnavailable
from tests.support import unavailable


class Dovecot(_Dovecot):
    """``new_mailbox()`` -> (user, password); ``append(user, raw, folder, flags, date)``;
    ``client(user)``; ``uidvalidity(user, folder)``; ``recreate_folder(user, folder)``;
    ``start()`` / ``stop()`` / ``restart()``; ``running``; ``users``.

    ``capabilities`` replaces what the server announces after login (``imap_capability``), e.g.
    ``"IMAP4rev1 ENABLE"`` to look like an old server without IDLE, MOVE and UIDPLUS."""

    def __init__(self, directory: str | Path | None = None, port: int | None = None, *,
                 capabilities: str | None = None) -> None:
        super().__init__(directory, port)
        if capabilities:
            with self.config.open("a") as config:
                config.write(f"imap_capability = {capabilities}\n")

    @property
    def users(self) -> dict[str, str]:
        """user -> password, for every mailbox made so far."""
        return self.passwords

    @property
    def running(self) -> bool:
        return self._pid() is not None

    def new_mailbox(self) -> tuple[str, str]:
        """A fresh, empty mailbox for one test; Dovecot reads its passwd file at the first login."""
        return self.add_user()

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def recreate_folder(self, user: str, folder: str) -> int:
        """Delete and create ``folder`` again, as a server does when it loses its UIDs: a new
        UIDVALIDITY, UIDs from 1. Returns the new UIDVALIDITY."""
        before = self.uidvalidity(user, folder)
        with self.client(user) as client:
            client.delete_folder(folder)
            client.create_folder(folder)
        while (after := self.uidvalidity(user, folder)) == before:
            # Dovecot takes UIDVALIDITY from the clock (seconds): within the same second, again
            time.sleep(0.2)
            with self.client(user) as client:
                client.delete_folder(folder)
                client.create_folder(folder)
        return after


def start_dovecot(capabilities: str | None = None) -> Dovecot:
    try:
        return Dovecot(capabilities=capabilities).start()  # type: ignore[return-value]
    except DovecotUnavailable as exc:
        unavailable("Dovecot", str(exc))
        raise


__all__ = ["Dovecot", "start_dovecot"]
