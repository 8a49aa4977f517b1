"""The bank's outbox courier: sends IPNs and transfer notifications until they are acknowledged.

An IPN is acknowledged by `{"RspCode": "00"}` or `"02"` (anything else, or no answer, is tried
again later, up to ten times, like the real gateway); a transfer notification by a 2xx with
`{"success": true}` (up to seven times, like SePay); a MoMo IPN by HTTP 204 (up to ten times);
a ZaloPay callback by `{"return_code": 1}` or `2` (the first try and three retries, like
ZaloPay). The `sandbox_bank` command calls `deliver_due()` in a loop; tests call it directly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.utils import timezone

from sandbox.models import Notification

logger = logging.getLogger(__name__)

RETRY_DELAYS = [timedelta(seconds=s) for s in (5, 15, 30, 60, 120, 300, 600, 900, 1800)]
MAX_ATTEMPTS = {
    Notification.Kind.IPN: 10,
    Notification.Kind.TRANSFER: 7,
    Notification.Kind.MOMO_IPN: 10,
    Notification.Kind.ZALOPAY_CALLBACK: 4,
}
ACKNOWLEDGED_IPN = frozenset({"00", "02"})
ACKNOWLEDGED_ZALOPAY = frozenset({1, 2})
# A courier owns a claimed row this long; a crashed courier's rows come back after it.
LEASE = timedelta(minutes=2)


def _send(notification: Notification, *, timeout: float) -> tuple[bool, int | None, str]:
    """One attempt: (acknowledged, HTTP status, what came back)."""
    kind = notification.kind
    try:
        if kind == Notification.Kind.IPN:
            separator = "&" if "?" in notification.url else "?"
            response = requests.get(
                f"{notification.url}{separator}{urlencode(notification.payload)}", timeout=timeout
            )
        elif kind == Notification.Kind.TRANSFER:
            response = requests.post(
                notification.url,
                json=notification.payload,
                headers={"Authorization": f"Apikey {settings.TRANSFER_WEBHOOK_API_KEY}"},
                timeout=timeout,
            )
        else:  # the wallets post their JSON
            response = requests.post(notification.url, json=notification.payload, timeout=timeout)
    except requests.RequestException as exc:
        return False, None, f"no answer: {exc}"[:2000]
    if kind == Notification.Kind.MOMO_IPN:
        # MoMo wants 204 No Content, nothing else.
        return response.status_code == 204, response.status_code, response.text[:2000]
    try:
        answer = response.json()
    except ValueError:
        return False, response.status_code, f"not JSON: {response.text[:500]}"
    if kind == Notification.Kind.IPN:
        acknowledged = isinstance(answer, dict) and answer.get("RspCode") in ACKNOWLEDGED_IPN
    elif kind == Notification.Kind.ZALOPAY_CALLBACK:
        acknowledged = (
            isinstance(answer, dict) and answer.get("return_code") in ACKNOWLEDGED_ZALOPAY
        )
    else:
        acknowledged = (
            200 <= response.status_code < 300
            and isinstance(answer, dict)
            and answer.get("success") is True
        )
    return acknowledged, response.status_code, response.text[:2000]


def deliver(notification_id: int, *, now: datetime | None = None, timeout: float = 10.0) -> str:
    """Try one notification now, whatever its schedule; returns its new state."""
    notification = Notification.objects.get(pk=notification_id)
    if notification.state != Notification.State.PENDING:
        return notification.state
    acknowledged, status, answer = _send(notification, timeout=timeout)
    now = now or timezone.now()
    attempts = notification.attempts + 1
    updates: dict[str, object] = {
        "attempts": attempts,
        "last_status": status,
        "last_answer": answer,
    }
    if acknowledged:
        updates.update(state=Notification.State.DELIVERED, delivered_at=now)
    elif attempts >= MAX_ATTEMPTS[Notification.Kind(notification.kind)]:
        updates["state"] = Notification.State.GAVE_UP
    else:
        updates["next_attempt_at"] = now + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    Notification.objects.filter(pk=notification.pk).update(**updates)
    logger.info(
        "sandbox %s #%s attempt %d: %s %s",
        notification.kind,
        notification.pk,
        attempts,
        "acknowledged" if acknowledged else "not acknowledged",
        answer[:200],
    )
    return str(updates.get("state", Notification.State.PENDING))


def deliver_due(*, now: datetime | None = None, limit: int = 20, timeout: float = 10.0) -> int:
    """Send every notification that is due; returns how many were tried.

    Each row is claimed with a compare-and-set on its schedule, so two couriers never send the
    same notification at once (and the HTTP calls happen outside any transaction).
    """
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(state=Notification.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("id", "next_attempt_at")[:limit]
    )
    tried = 0
    for notification_id, scheduled in due:
        claimed = Notification.objects.filter(
            pk=notification_id, state=Notification.State.PENDING, next_attempt_at=scheduled
        ).update(next_attempt_at=now + LEASE)
        if not claimed:
            continue  # another courier has it
        deliver(notification_id, now=now, timeout=timeout)
        tried += 1
    return tried


def notification_send_now(*, notification_id: int) -> bool:
    """Make a waiting notification (e.g. a delayed IPN) due at once."""
    return bool(
        Notification.objects.filter(pk=notification_id, state=Notification.State.PENDING).update(
            next_attempt_at=timezone.now()
        )
    )
