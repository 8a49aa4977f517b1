"""The inbox: the one way to keep a bank's message before acting on it, and to act on it once.

1. `inbox_store` saves the message under its dedupe key (unique in the database). A repeat of
   the same message finds the first row and is told so (`created=False`).
2. `inbox_process` runs the handler for the message's kind with the message row locked, and
   marks it processed in the same transaction: a message is applied exactly once even when the
   task is delivered twice or two workers race.
3. `inbox_due_for_retry` lists rows that no worker finished; the sweeper enqueues them again, so
   a lost task or a broker outage loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)

# Handlers take the locked message and return (outcome, detail, payment or None). Each channel
# owns its handler; they are named here so the worker needs no import-time registration.
HANDLERS: dict[str, str] = {
    InboundMessage.Kind.IPN: "payments.gateway.handle_ipn_message",
    InboundMessage.Kind.QUERY: "payments.gateway.handle_query_message",
    InboundMessage.Kind.TRANSFER: "payments.matching.handle_transfer_message",
    InboundMessage.Kind.STATEMENT: "payments.matching.handle_transfer_message",
}

# After this many failed attempts the sweeper stops; the row waits for an agent.
MAX_ATTEMPTS = 10

# Headers worth keeping; cookies and authorisation never are.
_KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-Forwarded-For",
    "X-Partner-Code",
    "X-Timestamp",
    "X-Request-Id",
)


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def keep_headers(headers: Mapping[str, str], remote_addr: str = "") -> dict[str, str]:
    kept = {name: headers[name] for name in _KEPT_HEADERS if name in headers}
    if remote_addr:
        kept["Remote-Addr"] = remote_addr
    return kept


def inbox_store(
    *,
    kind: str,
    dedupe_key: str,
    body: str | Mapping[str, Any],
    partner: Partner | None = None,
    headers: Mapping[str, str] | None = None,
    signature_valid: bool | None = None,
    payment: Payment | None = None,
    processed: tuple[str, str] | None = None,
) -> tuple[InboundMessage, bool]:
    """Store a message once. Returns (message, created); a repeat returns the first row.

    `processed=(outcome, detail)` stores a message that needs no further work (e.g. one whose
    signature failed) already marked processed, so no worker ever acts on it.
    """
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, sort_keys=True)
    now = timezone.now()
    fields: dict[str, Any] = {
        "kind": kind,
        "partner": partner,
        "body": text,
        "headers": dict(headers or {}),
        "signature_valid": signature_valid,
        "payment": payment,
        "received_at": now,
    }
    if processed:
        fields.update(processed_at=now, outcome=processed[0], outcome_detail=processed[1])
    try:
        with transaction.atomic():
            return InboundMessage.objects.create(dedupe_key=dedupe_key, **fields), True
    except IntegrityError:
        return InboundMessage.objects.get(dedupe_key=dedupe_key), False


def inbox_enqueue(message_id: int) -> None:
    """Hand a stored message to a worker once the storing transaction commits."""
    from payments import tasks
    from payments.queue import enqueue_after_commit

    InboundMessage.objects.filter(pk=message_id).update(last_enqueued_at=timezone.now())
    enqueue_after_commit(tasks.process_inbound_message, message_id)


def inbox_set_response(*, message_id: int, status: int, body: Any) -> None:
    """Remember what we answered, so a repeat of the request gets the same answer."""
    InboundMessage.objects.filter(pk=message_id).update(response_status=status, response_body=body)


def inbox_mark_processed(
    *, message_id: int, outcome: str, detail: str = "", payment: Payment | None = None
) -> bool:
    """Compare-and-set: True only for the caller that marked the row processed."""
    updates: dict[str, Any] = {
        "processed_at": timezone.now(),
        "outcome": outcome,
        "outcome_detail": detail,
    }
    if payment is not None:
        updates["payment"] = payment
    return bool(
        InboundMessage.objects.filter(pk=message_id, processed_at__isnull=True).update(**updates)
    )


HandlerResult = tuple[str, str, Payment | None]


def _handler_for(kind: str) -> Callable[[InboundMessage], HandlerResult]:
    return import_string(HANDLERS[kind])  # type: ignore[no-any-return]


def inbox_process(*, message_id: int) -> str:
    """Apply one stored message exactly once; returns its outcome.

    A handler that raises leaves the row unprocessed (its attempt counted) for a retry.
    """
    try:
        with transaction.atomic():
            message = InboundMessage.objects.select_for_update().get(pk=message_id)
            if message.processed_at is not None:
                return message.outcome
            if message.kind not in HANDLERS:
                inbox_mark_processed(
                    message_id=message.pk, outcome="no_handler", detail="kept for the record"
                )
                return "no_handler"
            outcome, detail, payment = _handler_for(message.kind)(message)
            inbox_mark_processed(
                message_id=message.pk, outcome=outcome, detail=detail, payment=payment
            )
            return outcome
    except Exception as exc:
        InboundMessage.objects.filter(pk=message_id, processed_at__isnull=True).update(
            attempts=F("attempts") + 1, outcome="error", outcome_detail=repr(exc)[:2000]
        )
        raise


def inbox_due_for_retry(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Unprocessed rows no worker finished within the retry delay, oldest first."""
    now = now or timezone.now()
    cutoff = now - settings.INBOX_RETRY_AFTER
    return list(
        InboundMessage.objects.filter(
            processed_at__isnull=True, received_at__lte=cutoff, attempts__lt=MAX_ATTEMPTS
        )
        .filter(Q(last_enqueued_at__isnull=True) | Q(last_enqueued_at__lte=cutoff))
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )
