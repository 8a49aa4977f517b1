"""The pay link printed on a bill: `PORTAL_BASE_URL/b/{token}/` opens that bill's checkout.

The token carries the bill's id and the day the link stops working, signed with PAY_LINK_KEY
(HMAC-SHA256, 96 bits kept): it is checked without any table, and a link changed by one
character, or past its day, is no link at all. A link is not a login: it shows one bill.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
from functools import lru_cache

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

_TOKEN = re.compile(r"^([0-9a-z]{1,12})-([0-9a-z]{1,6})-([A-Za-z0-9_-]{16})$")


def is_enabled() -> bool:
    return bool(settings.PAY_LINK_KEY)


def signed(key: str, message: str) -> str:
    """HMAC-SHA256 of `message`, 96 bits kept, URL-safe: the signature of the portal's links."""
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def _mac(bill_id: int, last_day: int) -> str:
    return signed(settings.PAY_LINK_KEY, f"bill-pay-link:{bill_id}:{last_day}")


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def pay_link_token(*, bill_id: int, due_date: datetime.date) -> str:
    last_day = (due_date + settings.PAY_LINK_VALID_AFTER_DUE).toordinal()
    return f"{base36(bill_id)}-{base36(last_day)}-{_mac(bill_id, last_day)}"


def bill_id_of_token(token: str, *, today: datetime.date) -> int | None:
    """The bill a genuine, unexpired token names; None for anything else."""
    match = _TOKEN.match(token)
    if not match or not is_enabled():
        return None
    bill_id, last_day = int(match[1], 36), int(match[2], 36)
    if not hmac.compare_digest(match[3], _mac(bill_id, last_day)):
        return None
    if today.toordinal() > last_day:
        return None
    return bill_id


_PLACEHOLDER = "0-0-" + "A" * 16


@lru_cache(maxsize=8)
def _around_token(urlconf: str | None, script_prefix: str) -> tuple[str, str]:
    # The URL is resolved once: a printing export makes half a million links.
    path = reverse("bill-pay-link", urlconf=urlconf, args=[_PLACEHOLDER])
    before, after = path.split(_PLACEHOLDER)
    return before, after


def pay_path(*, bill_id: int, due_date: datetime.date) -> str:
    before, after = _around_token(get_urlconf(), get_script_prefix())
    return before + pay_link_token(bill_id=bill_id, due_date=due_date) + after


def pay_url(*, bill_id: int, due_date: datetime.date) -> str:
    return settings.PORTAL_BASE_URL + pay_path(bill_id=bill_id, due_date=due_date)
