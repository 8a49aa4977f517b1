"""Asking banks how a redirect payment ended, for payments whose IPN never came (querydr).

The poller runs on a backoff schedule (`payments_due_for_poll`, `payment_poll`), and on demand
when a household comes back from the bank (`payment_request_poll`). The bank's answer is stored
in the inbox (kind `query`) before it is acted on, and applied by the applier like an IPN: it
settles the payment only on the bank's definite word. No answer, a timeout or an unsigned answer
changes nothing but the time of the next check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from payments import applier, inbox, services, states
from payments.channels.vnpay import gateway
from payments.channels.vnpay import protocol as vnpay
from payments.inbox import Applied
from payments.models import InboundMessage, Payment
from payments.queue import enqueue_after_commit

logger = logging.getLogger(__name__)

# A return page refreshes until the payment is final, and its URL can be replayed from the
# browser's history: one query to the bank per payment in this window is enough.
POLL_REQUEST_SECONDS = 30


def payment_request_poll(*, payment_id: object) -> None:
    """Ask a worker to query the bank about this payment now (after the current commit), at
    most once per POLL_REQUEST_SECONDS for a payment."""
    if cache.add(f"gateway:poll-request:{payment_id}", 1, POLL_REQUEST_SECONDS):
        enqueue_after_commit("payments.tasks.poll_gateway_payment", str(payment_id))


def poll_next_at(*, payment: Payment, now: datetime) -> datetime | None:
    """When to ask the bank next: the schedule's steps after the start, then every last step,
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
        # One last question exactly at the horizon, then the bank has had its chance.
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


def _http_timeout() -> tuple[float, float]:
    connect, read = settings.GATEWAY_HTTP_TIMEOUT
    return (float(connect), float(read))


def _ask_bank(url: str, body: dict[str, str]) -> dict[str, Any] | None:
    """POST a querydr; the bank's JSON answer, or None when it did not answer usefully."""
    if connection.in_atomic_block:
        # Holding locks while a bank takes its time would stall every other worker.
        raise RuntimeError("HTTP to a bank must not run inside a database transaction")
    try:
        response = requests.post(url, json=body, timeout=_http_timeout())
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("querydr to %s got no usable answer: %s", url, exc)
        return None
    return answer if isinstance(answer, dict) else None


def _json_text(answer: Mapping[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False, sort_keys=True)


def payment_poll(*, payment_id: Any, now: datetime | None = None) -> str:
    """Ask the bank (querydr) how a redirect payment ended and apply its answer.

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
        config = gateway.gateway_config(partner)
    except gateway.GatewayNotConfigured:
        config = None
    if config is None or not config.api_url:
        logger.warning("cannot ask %s about %s: no API URL", partner.code, payment.reference)
        _reschedule(payment, now=now)
        return "not_configured"
    request_id = vnpay.new_request_id()
    body = vnpay.build_query_request(
        config,
        request_id=request_id,
        txn_ref=payment.reference,
        order_info=payment.provider_data.get("vnp_OrderInfo") or gateway.order_info(payment),
        transaction_date=payment.provider_data.get("vnp_CreateDate")
        or vnpay.format_time(payment.created_at),
        created_at=now,
        ip_address=str(settings.GATEWAY_SERVER_IP),
    )
    answer = _ask_bank(config.api_url, body)
    if answer is None:
        _reschedule(payment, now=now)
        return "no_answer"
    # Stored before it is acted on; an unsigned answer is kept, already marked, never applied.
    genuine = vnpay.verify_query_response(answer, config.secret)
    code = gateway.safe_key(partner.code, 20)
    signature = gateway.safe_key(str(answer.get("vnp_SecureHash", "")) or "none", 128)
    try:
        message_id = inbox.inbox_receive(
            kind=InboundMessage.Kind.QUERY,
            dedupe_key=f"query:{code}:{request_id}"
            if genuine
            else f"query-bad:{code}:{request_id}:{signature}",
            body=_json_text(answer),
            partner_id=partner.pk,
            signature_valid=genuine,
            payment_id=payment.pk,
            processed=None
            if genuine
            else Applied(
                InboundMessage.Outcome.INVALID_SIGNATURE, "the answer's signature did not verify"
            ),
        )
        if not genuine:
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
