"""HMAC signatures as the partners write them (lower-case hex), compared in constant time. No
Django: the protocol modules use it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

Digest = Callable[..., Any]


def hmac_hex(key: str, message: str, digest: Digest = hashlib.sha256) -> str:
    """HMAC of the message's UTF-8 bytes with the key's, as lower-case hex."""
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), digest).hexdigest()


def hmac_sha256(key: str, message: str) -> str:
    return hmac_hex(key, message, hashlib.sha256)


def hmac_sha512(key: str, message: str) -> str:
    return hmac_hex(key, message, hashlib.sha512)


def same_signature(expected: str, received: object) -> bool:
    """Whether a received hex signature is the expected one (case-insensitive, constant time).

    compare_digest wants ASCII: a received value with anything else (or not text at all) is
    simply wrong, never an error."""
    if not isinstance(received, str) or not received or not received.isascii():
        return False
    return hmac.compare_digest(expected.encode(), received.lower().encode())


def signed_text(value: object) -> str:
    """A JSON value as the wallets put it in the text they sign: numbers as their digits,
    booleans as true/false, a missing value as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
