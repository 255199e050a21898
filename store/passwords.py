"""Agents' passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile).

A password is never stored, logged or returned; only its hash is kept. Checking the password of
an email that names nobody costs the same as checking a real one (a dummy hash is verified), so
the time of a refusal does not tell which emails have accounts.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps a huge body from costing more


@functools.cache
def hasher() -> PasswordHasher:
    return PasswordHasher()


def check_length(password: str) -> str:
    """The password, or ValueError saying what is wrong with its length."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password has at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of a password of acceptable length (ValueError otherwise)."""
    return hasher().hash(check_length(password))


@functools.cache
def dummy_hash() -> str:
    # Made once per process with the same parameters as real hashes, so verifying it costs the same.
    return hasher().hash("omnidesk: no agent has this email")


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (an argon2 hash). With no hash (an unknown email,
    or an agent who has no password yet) a dummy hash is verified, so the answer takes as long."""
    try:
        if stored is None:
            hasher().verify(dummy_hash(), password)
            return False
        return hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with weaker parameters than today's (rehash it on sign-in)."""
    return hasher().check_needs_rehash(stored)
