r"""The collection API's request signature, as pure functions (no Django), testable in microseconds.

A partner signs every request with its own secret:

    X-Signature = hex(HMAC-SHA256(secret, "{X-Timestamp}\n{METHOD}\n{path}\n{raw request body}"))

in lower case; METHOD is upper case and path is the URL's path without host or query string
(`/api/v1/collection/payments/`). The method and path are signed so that a body signed for one
operation cannot be sent to another (a payment notice replayed as a reversal, say).

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


def signed_message(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    """The exact bytes that are signed: timestamp header as sent, method, path, raw body, joined
    by newlines (none of the first three can hold one)."""
    head = f"{timestamp}\n{method.upper()}\n{path}\n"
    return head.encode("utf-8") + body


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `signed_message` with the partner's secret."""
    message = signed_message(timestamp, method, path, body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_matches(
    secret: str, timestamp: str, method: str, path: str, body: bytes, signature: str
) -> bool:
    """Constant-time comparison, so response timing says nothing about how close a guess was."""
    if not _SIGNATURE.fullmatch(signature) or not timestamp.isascii():
        return False
    expected = sign(secret, timestamp, method, path, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))


def parse_timestamp(value: str) -> int | None:
    """Unix seconds as plain digits; anything else (signs, decimals, exponents) is refused."""
    return int(value) if _TIMESTAMP.fullmatch(value) else None


def timestamp_is_fresh(timestamp: int, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Within ±tolerance of our clock: neither stale (a replay) nor from the future."""
    return abs(now - timestamp) <= tolerance
