"""The Dovecot the email tests run against: bench.dovecot's server, failing under CI (and skipping
elsewhere) when Dovecot is not installed."""

from __future__ import annotations

from bench.dovecot import Dovecot, DovecotUnavailable
from tests.support import unavailable


def start_dovecot() -> Dovecot:
    try:
        return Dovecot().start()
    except DovecotUnavailable as exc:
        unavailable("Dovecot", str(exc))
        raise


__all__ = ["Dovecot", "start_dovecot"]
