"""The collection API's request signature, as pure functions (no Django), testable in microseconds.

A partner signs every request with its own secret:

    X-Signature = hex(HMAC-SHA256(secret, "{X-Timestamp}.{raw request body}"))   (lower case)

The timestamp is Unix seconds and must be within `TOLERANCE_SECONDS` of our clock, so a captured
request stops working after a few minutes; inside that window the portal recognises a replay by
its signature (see `payments.channels.collection.handling`).
"""

from __future__ import annotations

import hashlib
import hmac
import re

TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


def signed_message(timestamp: str, body: bytes) -> bytes:
    """The exact bytes that are signed: the timestamp header as sent, a dot, the raw body."""
    return timestamp.encode("ascii") + b"." + body


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `"{timestamp}.{body}"` with the partner's secret."""
    return hmac.new(
        secret.encode("utf-8"), signed_message(timestamp, body), hashlib.sha256
    ).hexdigest()


def signature_matches(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time comparison, so response timing says nothing about how close a guess was."""
    if not _SIGNATURE.fullmatch(signature) or not timestamp.isascii():
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))


def parse_timestamp(value: str) -> int | None:
    """Unix seconds as plain digits; anything else (signs, decimals, exponents) is refused."""
    return int(value) if _TIMESTAMP.fullmatch(value) else None


def timestamp_is_fresh(timestamp: int, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Within ±tolerance of our clock: neither stale (a replay) nor from the future."""
    return abs(now - timestamp) <= tolerance
