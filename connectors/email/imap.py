"""Reading a mailbox: polling by UID with a (UIDVALIDITY, last UID) cursor per folder, IDLE to hear
of new mail at once, and what to do with imported mail once it is stored.

The cursor moves only with the batch it follows (the caller commits both together), and the
after-import action (flag, move, delete) runs only when the caller resumes the generator, that is
after the commit: a crash in between re-imports the batch, which the store de-duplicates.

Mail is read with BODY.PEEK[] (reading never sets \\Seen), ``batch_size`` messages and at most
BATCH_BYTES a batch. Servers without MOVE get COPY + \\Deleted + EXPUNGE (UID EXPUNGE with
UIDPLUS; without it a plain EXPUNGE, which also removes what others marked \\Deleted).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.base import PollBatch
from connectors.email import parallel
from connectors.email.config import EmailConfig
from connectors.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

IDLE_RENEW = 25 * 60.0  # servers drop IDLE after 30 minutes (RFC 2177): renew before
BATCH_BYTES = 50 * 1024 * 1024  # a batch is cut short before its mail exceeds this (1 message at least)
_NETWORK = (OSError, imaplib.IMAP4.abort, socket.timeout)


def connect(config: EmailConfig) -> IMAPClient:
    """A logged-in connection. ConfigError when the server refuses the login or the TLS
    certificate; TransientError when it cannot be reached."""
    where = f"{config.imap_host}:{config.imap_port}"
    try:
        client = IMAPClient(config.imap_host, port=config.imap_port, ssl=config.imap_security == "tls",
                            ssl_context=ssl.create_default_context(), timeout=config.timeout)
    except ssl.SSLCertVerificationError as exc:
        raise ConfigError(f"IMAP server {where}: TLS certificate not trusted ({exc.verify_message})") from None
    except _NETWORK as exc:
        raise TransientError(f"IMAP server {where} unreachable: {exc or type(exc).__name__}") from None
    try:
        if config.imap_security == "starttls":
            client.starttls(ssl.create_default_context())
        client.login(config.imap_username, config.imap_password.get_secret_value())
    except LoginError as exc:
        _quietly(client.shutdown)
        raise ConfigError(f"IMAP login refused for {config.imap_username} at {where}: {_text(exc)}",
                          auth=True) from None
    except ssl.SSLError as exc:
        _quietly(client.shutdown)
        raise ConfigError(f"IMAP server {where}: TLS failed ({exc})") from None
    except IMAPClientError as exc:
        _quietly(client.shutdown)
        raise ConfigError(f"IMAP server {where} refused: {_text(exc)}") from None
    except _NETWORK as exc:
        _quietly(client.shutdown)
        raise TransientError(f"IMAP server {where} dropped the connection: {exc}") from None
    client.normalise_times = False  # INTERNALDATE with its zone, not as naive local time
    return client


def check(config: EmailConfig) -> None:
    """Log in and open every folder to import, as the channel will."""
    client = connect(config)
    try:
        for folder in config.folders:
            if not client.folder_exists(folder):
                raise ConfigError(f"IMAP folder {folder!r} does not exist on {config.imap_host}")
        target = _move_target(config)
        if target and not client.folder_exists(target):
            client.create_folder(target)
    except IMAPClientError as exc:
        raise ConfigError(f"IMAP server {config.imap_host}: {_text(exc)}") from None
    except _NETWORK as exc:
        raise TransientError(f"IMAP server {config.imap_host} dropped the connection: {exc}") from None
    finally:
        _logout(client)


def poll(config: EmailConfig, cursor: dict[str, Any] | None) -> Iterator[PollBatch]:
    """Yield what is new in each folder, ``batch_size`` messages at a time, each batch with the
    cursor after it."""
    folders: dict[str, dict[str, int]] = dict((cursor or {}).get("folders", {}))
    client = connect(config)
    try:
        for folder in config.folders:
            yield from _poll_folder(client, config, folder, folders)
    except (IMAPClientError, *_NETWORK) as exc:
        raise TransientError(f"IMAP server {config.imap_host}: {_text(exc)}") from None
    finally:
        _logout(client)


def _poll_folder(
    client: IMAPClient, config: EmailConfig, folder: str, folders: dict[str, dict[str, int]]
) -> Iterator[PollBatch]:
    if not client.folder_exists(folder):
        raise ConfigError(f"IMAP folder {folder!r} does not exist on {config.imap_host}")
    info = client.select_folder(folder)
    uidvalidity = int(info[b"UIDVALIDITY"])
    known = folders.get(folder)
    floor = 0  # on a fresh start: the UIDs below UIDNEXT that the search left out stay behind
    if known and known.get("uidvalidity") == uidvalidity:
        last = int(known["last_uid"])
        # "n:*" also matches the highest UID when it is below n: keep only what is really new.
        uids = sorted(uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last)
    else:
        if known:
            log.warning("%s %s: UIDVALIDITY changed (%s -> %s); resyncing", config.address, folder,
                        known.get("uidvalidity"), uidvalidity)
        criteria: list[Any] = ["ALL"]
        if config.import_since_days is not None:
            since = (datetime.now(UTC) - timedelta(days=config.import_since_days)).date()
            criteria = ["SINCE", since]
        uids = sorted(client.search(criteria))
        floor = int(info.get(b"UIDNEXT", 1)) - 1
        if not uids:  # remember the mailbox as it is, so the next poll asks only for what is new
            folders[folder] = {"uidvalidity": uidvalidity, "last_uid": floor}
            yield PollBatch((), {"folders": dict(folders)})
            return
    # Pipelined: batch N+1 is fetched and its parsing started (in a process pool, see .parallel)
    # before batch N is handed over, so that it is parsed while the caller stores N.
    options = _parse_options(config)
    pending: tuple[list[int], parallel.Parsing, dict[str, Any]] | None = None
    try:
        for chunk in _batches(client, config, uids):
            fetched = client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])  # PEEK: \Seen stays as it was
            items = [parallel.Fetched(uid, bytes(fetched[uid][b"BODY[]"]), _utc(fetched[uid].get(b"INTERNALDATE")))
                     for uid in chunk if fetched.get(uid, {}).get(b"BODY[]") is not None]
            # (a UID without a body was expunged meanwhile: nothing to import)
            last_uid = max(chunk[-1], floor) if chunk[-1] == uids[-1] else chunk[-1]
            folders[folder] = {"uidvalidity": uidvalidity, "last_uid": last_uid}
            previous, pending = pending, (chunk, parallel.submit(items, options), {"folders": dict(folders)})
            if previous is not None:
                yield from _hand_over(client, config, *previous)
        if pending is not None:
            done, pending = pending, None
            yield from _hand_over(client, config, *done)
    finally:
        if pending is not None:  # the caller stopped early: the parse still running is not wanted
            pending[1].cancel()


def _hand_over(client: IMAPClient, config: EmailConfig, chunk: list[int], parsing: parallel.Parsing,
               cursor: dict[str, Any]) -> Iterator[PollBatch]:
    yield PollBatch(tuple(parsing.result()), cursor)
    _after_import(client, config, chunk)  # the caller resumed: the batch is stored


def _utc(when: Any) -> datetime | None:
    if not isinstance(when, datetime):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _parse_options(config: EmailConfig) -> parallel.Options:
    return parallel.Options(own_addresses=(config.address,), allow_remote_images=config.allow_remote_images,
                            max_attachment_bytes=int(config.max_attachment_mb * 1024 * 1024))


def _batches(client: IMAPClient, config: EmailConfig, uids: list[int]) -> Iterator[list[int]]:
    """``uids`` in batches of ``batch_size``, cut shorter where their mail exceeds BATCH_BYTES."""
    for start in range(0, len(uids), config.batch_size):
        group = uids[start:start + config.batch_size]
        sizes = client.fetch(group, ["RFC822.SIZE"])
        batch: list[int] = []
        total = 0
        for uid in group:
            size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if batch and total + size > BATCH_BYTES:
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch


def _move_target(config: EmailConfig) -> str | None:
    return config.after_import[5:].strip() if config.after_import.startswith("move:") else None


def _after_import(client: IMAPClient, config: EmailConfig, uids: list[int]) -> None:
    target = _move_target(config)
    if target:
        if not client.folder_exists(target):
            client.create_folder(target)
        if client.has_capability("MOVE"):
            client.move(uids, target)
            return
        client.copy(uids, target)
    if target or config.after_import == "delete":
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()
        return
    client.add_flags(uids, [SEEN], silent=True)


def watch(config: EmailConfig, stop: threading.Event, notify: Callable[[], None]) -> None:
    """Call ``notify()`` when new mail arrives in the main folder, until ``stop`` is set.

    Reconnects with backoff (1 s doubling to 60 s; a refused login waits 5 minutes) and notifies
    on each (re)connection, since mail may have come before it listened. Without IDLE (the server
    lacks it, or ``use_idle`` is off) it just waits for ``stop``: the regular polls cover it; it
    does not return early, which would make the scheduler start it again and again."""
    delay = 1.0
    while config.use_idle and not stop.is_set():
        client = None
        try:
            client = connect(config)
            if not client.has_capability("IDLE"):
                log.info("%s: the server has no IDLE; polling every %g s", config.address, config.poll_interval)
                break
            _keepalive(client)
            client.select_folder(config.imap_folder, readonly=True)
            _notify(config, notify)  # mail may have come before we listened: the caller polls once
            delay = 1.0
            _idle(config, client, stop, notify)
        except ConfigError as exc:
            log.warning("%s: cannot watch for new mail: %s", config.address, exc)
            delay = max(delay, 300.0)
        except (TransientError, IMAPClientError, *_NETWORK) as exc:
            log.info("%s: IDLE connection lost (%s); reconnecting in %g s", config.address, _text(exc), delay)
        finally:
            if client is not None:
                _logout(client)
        stop.wait(delay)
        delay = min(delay * 2, 60.0)
    stop.wait()


def _idle(config: EmailConfig, client: IMAPClient, stop: threading.Event, notify: Callable[[], None]) -> None:
    client.idle()
    started = time.monotonic()
    try:
        while not stop.is_set():
            responses = client.idle_check(timeout=1)  # short, so that stop is noticed within a second
            if time.monotonic() - started > IDLE_RENEW:
                responses += client.idle_done()[1]
                client.idle()
                started = time.monotonic()
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                _notify(config, notify)
            bye = next((r for r in responses if r and r[0] == b"BYE"), None)
            if bye is not None:
                raise TransientError(f"the server closed the IDLE connection: {bye!r}")
    finally:
        _quietly(client.idle_done)


def _notify(config: EmailConfig, notify: Callable[[], None]) -> None:
    try:
        notify()
    except Exception:  # the caller's trouble (e.g. its database) must not end the watch
        log.exception("%s: notifying of new mail failed", config.address)


def _keepalive(client: IMAPClient) -> None:
    """TCP keepalive on the IDLE connection, so a silently dropped one is noticed in minutes,
    not only at the next IDLE renewal."""
    sock = client.socket()
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
            if hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection may be gone already
        _quietly(client.shutdown)


def _quietly(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        call()


def _text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text or type(exc).__name__
