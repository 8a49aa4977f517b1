"""The opt-out link in every reminder: `PORTAL_BASE_URL/unsubscribe/{token}/`.

The token names a customer and a channel, signed with UNSUBSCRIBE_LINK_KEY (HMAC-SHA256, 96
bits kept), like the pay link: no table, and it does not expire, because a household may want
out of messages long after the one that carried it. Its own key, so that whoever can make pay
links cannot opt households out, nor the reverse.
"""

from __future__ import annotations

import hmac
import re

from django.conf import settings
from django.urls import reverse

from customers.paylinks import base36, signed

CHANNELS = ("email", "sms")
_TOKEN = re.compile(r"^([0-9a-z]{1,12})-(email|sms)-([A-Za-z0-9_-]{16})$")


def is_enabled() -> bool:
    return bool(settings.UNSUBSCRIBE_LINK_KEY)


def _mac(customer_id: int, channel: str) -> str:
    return signed(settings.UNSUBSCRIBE_LINK_KEY, f"reminder-opt-out:{customer_id}:{channel}")


def unsubscribe_token(*, customer_id: int, channel: str) -> str:
    return f"{base36(customer_id)}-{channel}-{_mac(customer_id, channel)}"


def read_token(token: str) -> tuple[int, str] | None:
    """(customer id, channel) of a genuine token; None for anything else."""
    match = _TOKEN.match(token)
    if not match or not is_enabled():
        return None
    customer_id, channel = int(match[1], 36), match[2]
    if not hmac.compare_digest(match[3], _mac(customer_id, channel)):
        return None
    return customer_id, channel


def unsubscribe_url(*, customer_id: int, channel: str) -> str:
    token = unsubscribe_token(customer_id=customer_id, channel=channel)
    return settings.PORTAL_BASE_URL + reverse("unsubscribe", args=[token])
