"""The sandbox as the portal's SMS gateway: `POST /sandbox/sms/` with the JSON body
`{"to", "text"}` and `X-Signature`, the hex HMAC-SHA256 of the raw body with SANDBOX_SMS_KEY
(the portal signs with SMS_GATEWAY_KEY, the same value in development). The gateway's side of
the portal's adapter, written from the protocol, not imported."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings

from sandbox.models import TextMessage


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def receive(*, body: bytes, signature: str) -> TextMessage:
    key = settings.SANDBOX_SMS_KEY
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest() if key else ""
    if not expected or not hmac.compare_digest(expected, signature):
        raise Refused(401, "bad signature")
    try:
        data = json.loads(body)
        to, text = str(data["to"]), str(data["text"])
    except (ValueError, KeyError, TypeError):
        raise Refused(400, "body must be JSON with to and text") from None
    if not to or not text:
        raise Refused(400, "to and text are required")
    return TextMessage.objects.create(to=to[:20], text=text)
