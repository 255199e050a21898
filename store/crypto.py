"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the secret key."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from store.settings import secret_key


@functools.cache
def _fernet(key: str) -> Fernet:
    digest = hashlib.sha256(b"omnidesk-secrets\0" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(values: dict[str, Any]) -> str:
    return _fernet(secret_key()).encrypt(json.dumps(values).encode()).decode()


def decrypt(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(_fernet(secret_key()).decrypt(token.encode()))
    except InvalidToken:
        raise RuntimeError(
            "channel secrets cannot be decrypted: OMNIDESK_SECRET_KEY differs from the key "
            "they were stored with"
        ) from None


def token_hash(token: str) -> str:
    """API tokens are kept as SHA-256 digests: a leaked database reveals no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
