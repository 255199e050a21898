"""Sending by SMTP, with the server's answers turned into our two error kinds: 4xx and network
trouble are transient (retried later), 5xx permanent (the reply fails with the server's words)."""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from email.message import EmailMessage

from connectors.email.config import EmailConfig
from connectors.errors import ConfigError, PermanentError, TransientError

log = logging.getLogger(__name__)


def _open(config: EmailConfig) -> smtplib.SMTP:
    where = f"{config.smtp_host}:{config.smtp_port}"
    try:
        if config.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=config.timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout)
        smtp.ehlo()
        if config.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        password = config.smtp_secret
        if password and smtp.has_extn("auth"):
            smtp.login(config.smtp_username or config.address, password)
        return smtp
    except smtplib.SMTPAuthenticationError as exc:
        if exc.smtp_code < 500:  # e.g. 454 "temporary authentication failure"
            raise TransientError(f"SMTP login at {where} failed for now: {_said(exc)}") from None
        raise ConfigError(f"SMTP login refused for {config.smtp_username} at {where}: {_said(exc)}",
                          auth=True) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise ConfigError(f"SMTP server {where}: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConfigError(f"SMTP server {where}: TLS certificate not trusted ({exc.verify_message})") from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"SMTP server {where} refused: {_said(exc)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP server {where} unreachable: {exc or type(exc).__name__}") from None


def send(config: EmailConfig, msg: EmailMessage, to: list[str]) -> None:
    """Hand ``msg`` to the server for ``to``. Some recipients refused but not all: it went out."""
    smtp = _open(config)
    try:
        refused = smtp.send_message(msg, from_addr=config.address, to_addrs=to)
    except smtplib.SMTPRecipientsRefused as exc:
        # Every recipient refused. If one of them only for now, a retry may reach them.
        codes = [code for code, _ in exc.recipients.values()]
        code = min(codes, key=lambda c: not 400 <= c < 500)
        said = "; ".join(f"{address}: {c} {_text(text)}" for address, (c, text) in exc.recipients.items())
        raise _by_code(code, f"recipient refused ({said})") from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"SMTP server refused the message: {_said(exc)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP connection lost while sending: {exc or type(exc).__name__}") from None
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()
    if refused:  # some recipients took it: the reply went out; the others are only logged
        log.warning("sent, but refused for %s", "; ".join(f"{a}: {c} {_text(t)}" for a, (c, t) in refused.items()))


def check(config: EmailConfig) -> None:
    """Connect, log in (where a password is set) and say NOOP, as sending will."""
    smtp = _open(config)
    try:
        code, said = smtp.noop()
        if code >= 400:
            raise _by_code(code, f"SMTP server {config.smtp_host} answered NOOP with {code} {_text(said)}")
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP server {config.smtp_host} dropped the connection: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()


def _text(said: bytes | str) -> str:
    return said.decode(errors="replace") if isinstance(said, bytes) else str(said)


def _said(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _by_code(code: int, reason: str) -> Exception:
    return PermanentError(reason) if 500 <= code < 600 else TransientError(reason)
