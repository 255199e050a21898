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
        code, said = next(iter(exc.recipients.values()))
        text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        raise _by_code(code, f"recipient refused: {code} {text}") from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(exc.smtp_code, f"SMTP server refused the message: {_said(exc)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP connection lost while sending: {exc or type(exc).__name__}") from None
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()
    if refused:
        log.warning("sent, but refused for %s", ", ".join(f"{a} ({c})" for a, (c, _) in refused.items()))


def check(config: EmailConfig) -> None:
    smtp = _open(config)
    try:
        smtp.noop()
    finally:
        with contextlib.suppress(Exception):
            smtp.quit()


def _said(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {error}"


def _by_code(code: int, reason: str) -> Exception:
    return PermanentError(reason) if 500 <= code < 600 else TransientError(reason)
