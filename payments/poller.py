"""Asking partners how a redirect payment ended, for payments whose notification never came
(VNPay's querydr, MoMo's and ZaloPay's status queries: each channel's `ask`).

The poller runs on a backoff schedule (`payments_due_for_poll`, `payment_poll`), and on demand
when a household comes back from the partner's page (`payment_request_poll`). The answer is
stored in the inbox (kind `query`) before it is acted on, and applied by the applier like a
notification: it settles the payment only on the partner's definite word. No answer, a timeout
or a badly signed answer changes nothing but the time of the next check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from common.cache_guard import outage_tolerated
from payments import applier, inbox, services, states
from payments.channels import registry
from payments.channels.common.pages import NotConfigured
from payments.channels.common.receiving import safe_key
from payments.inbox import Applied
from payments.models import InboundMessage, Payment
from payments.queue import enqueue_after_commit

logger = logging.getLogger(__name__)

# A return page refreshes until the payment is final, and its URL can be replayed from the
# browser's history: one query to the partner per payment in this window is enough.
POLL_REQUEST_SECONDS = 30


def payment_request_poll(*, payment_id: object) -> None:
    """Ask a worker to query the partner about this payment now (after the current commit), at
    most once per POLL_REQUEST_SECONDS for a payment."""
    first = True  # without the cache the limit is lost, not the poll (asking twice is harmless)
    with outage_tolerated("poll of %s requested without its once-a-while limit", payment_id):
        first = cache.add(f"gateway:poll-request:{payment_id}", 1, POLL_REQUEST_SECONDS)
    if first:
        enqueue_after_commit("payments.tasks.poll_gateway_payment", str(payment_id))


def poll_next_at(*, payment: Payment, now: datetime) -> datetime | None:
    """When to ask the partner next: the schedule's steps after the start, then every last step,
    until expiry plus the grace period; None once that has passed."""
    steps: list[timedelta] = list(settings.GATEWAY_POLL_SCHEDULE) or [timedelta(minutes=15)]
    start = payment.created_at
    expires_at = payment.expires_at or start + settings.PAYMENT_TTL
    horizon = expires_at + settings.GATEWAY_POLL_GRACE
    moment = next((start + step for step in steps if start + step > now), None)
    if moment is None:
        interval = steps[-1]
        last = start + steps[-1]
        periods = (now - last) // interval + 1
        moment = last + periods * interval
    if moment > horizon:
        # One last question exactly at the horizon, then the partner has had its chance.
        return horizon if horizon > now else None
    return moment


def payments_due_for_poll(*, now: datetime | None = None, limit: int = 500) -> list[Any]:
    """Ids of pending or expired redirect payments whose next status check is due."""
    now = now or timezone.now()
    return list(
        Payment.objects.filter(
            method=Payment.Method.REDIRECT,
            status__in=list(states.SETTLEABLE),
            next_poll_at__lte=now,
        )
        .order_by("next_poll_at")
        .values_list("id", flat=True)[:limit]
    )


def _json_text(answer: Mapping[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False, sort_keys=True)


def payment_poll(*, payment_id: Any, now: datetime | None = None) -> str:
    """Ask the partner (its channel's status query) how a redirect payment ended; apply the answer.

    Returns what happened: the inbox outcome of the answer, or "no_answer", "not_pollable",
    "not_found", "not_configured", "invalid_signature".
    """
    payment = Payment.objects.select_related("partner", "customer").filter(pk=payment_id).first()
    if payment is None:
        return "not_found"
    if (
        payment.method != Payment.Method.REDIRECT
        or payment.partner is None
        or payment.status not in states.SETTLEABLE
    ):
        return "not_pollable"
    partner = payment.partner
    now = now or timezone.now()
    try:
        answer = registry.channel_for(partner).ask(payment, now=now)
    except NotConfigured:
        logger.warning("cannot ask %s about %s: not configured", partner.code, payment.reference)
        _reschedule(payment, now=now)
        return "not_configured"
    if answer is None:
        _reschedule(payment, now=now)
        return "no_answer"
    # Stored before it is acted on; a badly signed answer is kept, already marked, never applied.
    # A protocol that signs no answer (genuine None) is trusted as its HTTPS API's answer.
    forged = answer.genuine is False
    code = safe_key(partner.code, 20)
    request_id = safe_key(answer.request_id, 40)
    signature = safe_key(answer.signature or "none", 128)
    try:
        message_id = inbox.inbox_receive(
            kind=InboundMessage.Kind.QUERY,
            dedupe_key=f"query-bad:{code}:{request_id}:{signature}"
            if forged
            else f"query:{code}:{request_id}",
            body=_json_text(answer.body),
            partner_id=partner.pk,
            signature_valid=answer.genuine,
            payment_id=payment.pk,
            processed=Applied(
                InboundMessage.Outcome.INVALID_SIGNATURE, "the answer's signature did not verify"
            )
            if forged
            else None,
        )
        if forged:
            return "invalid_signature"
        if message_id is None:  # a request id is new each time: never in practice
            return "duplicate"
        return applier.apply_one(message_id)
    finally:
        # Even if applying the answer failed, the next check stays on the schedule.
        _reschedule(payment, now=now)


def _reschedule(payment: Payment, *, now: datetime) -> None:
    # Only a payment still open gets a next check; the service ignores settled ones anyway.
    services.payment_set_poll_schedule(
        payment_id=payment.pk, next_poll_at=poll_next_at(payment=payment, now=now)
    )
