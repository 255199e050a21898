"""A throw-away Dovecot IMAP server on loopback, for the email tests and the email benchmark.

Everything lives in one directory: configuration, passwd file, maildirs, logs. Users can be added
while it runs (one passwd file each, read at first login). Started as root it drops to the ``dovecot``
users itself; the mail belongs to uid 1000 as TEST-SERVERS.md describes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

MAIL_UID = 1000

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
log_path = {d}/dovecot.log
auth_verbose = yes
info_log_path = {d}/dovecot.log
mail_max_userip_connections = 100
imap_idle_notify_interval = 2 mins
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class DovecotUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """``Dovecot().start()``; ``add_user()``; ``append(user, raw)``; ``restart()``; ``stop()``."""

    def __init__(self, directory: str | Path | None = None, port: int | None = None) -> None:
        binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
        if binary is None:
            raise DovecotUnavailable("dovecot is not installed (apt-get install dovecot-imapd)")
        self.binary = binary
        self._own_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="omnidesk-dovecot-"))
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self.passwords: dict[str, str] = {}
        for sub in ("run", "state", "mail", "users"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(CONFIG.format(d=self.dir, port=self.port, uid=MAIL_UID))

    # -- the server --------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Dovecot:
        # The daemon keeps inherited descriptors open: give it a file, not a pipe to wait on.
        with (self.dir / "start.log").open("w+") as out:
            result = subprocess.run([self.binary, "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            if result.returncode != 0:
                out.seek(0)
                raise DovecotUnavailable(f"dovecot did not start: {out.read().strip()} {self.log()}")
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as s:
                if s.recv(200).startswith(b"* OK"):
                    return self
            if time.monotonic() > deadline:
                raise DovecotUnavailable(f"dovecot did not answer on port {self.port}: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "run" / "master.pid").unlink()
        # Wait until the port is free again, so a restart can bind it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "run" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- mailboxes -----------------------------------------------------------------------------

    def add_user(self, user: str | None = None, password: str | None = None) -> tuple[str, str]:
        """A new mailbox; returns (user, password)."""
        user = user or f"shop{secrets.token_hex(4)}"
        password = password or secrets.token_urlsafe(12)
        home = self.dir / "mail" / user
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, MAIL_UID, MAIL_UID)
        # One passwd file a user: a new user is a new file, which Dovecot reads on first login.
        (self.dir / "users" / user).write_text(f"{user}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}\n")
        self.passwords[user] = password
        return user, password

    def client(self, user: str) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(user, self.passwords[user])
        return client

    def append(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> None:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=tuple(flags), msg_time=date)

    def append_many(self, user: str, raws: Iterable[bytes], folder: str = "INBOX", chunk: int = 200) -> int:
        """Fill a mailbox fast: MULTIAPPEND in chunks on one connection."""
        count = 0
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            pending: list[bytes] = []
            for raw in raws:
                pending.append(raw)
                if len(pending) == chunk:
                    client.multiappend(folder, pending)
                    count += len(pending)
                    pending = []
            if pending:
                client.multiappend(folder, pending)
                count += len(pending)
        return count

    def imap_settings(self, user: str, **extra: Any) -> dict[str, Any]:
        """The IMAP half of an email channel's config for this mailbox."""
        return {"imap_host": self.host, "imap_port": self.port, "imap_security": "none",
                "imap_username": user, "imap_password": self.passwords[user], **extra}


@contextlib.contextmanager
def running() -> Iterator[Dovecot]:
    server = Dovecot()
    try:
        yield server.start()
    finally:
        server.close()
