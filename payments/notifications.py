"""Receipts: an e-mail through Django's mail backends and an SMS through a pluggable backend.

The SMS backend is the HTTP gateway when SMS_GATEWAY_URL is set, else SMS_BACKEND; reminders
(`payments.reminders`) send through the same two.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import urllib3
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.module_loading import import_string

from common.templatetags.formatting import format_vnd
from payments.bulk import AnyOf
from payments.models import Payment, PaymentBill

logger = logging.getLogger(__name__)


class SMSBackend(Protocol):
    def send(self, *, to: str, text: str) -> None: ...


class ConsoleSMSBackend:
    """Development default: prints the message instead of sending it."""

    def send(self, *, to: str, text: str) -> None:
        print(f"[SMS to {to}] {text}")  # noqa: T201 - this backend's whole purpose


class LocmemSMSBackend:
    """For tests: keeps sent messages in `outbox`."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, to: str, text: str) -> None:
        self.outbox.append((to, text))


class SMSGatewayError(Exception):
    """The gateway did not take the message; the text says what it answered."""


def sms_gateway_signature(body: bytes, key: str) -> str:
    """The `X-Signature` of a gateway request: HMAC-SHA256 over the raw body, in hex."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@functools.cache
def _gateway_pool(pid: int) -> urllib3.PoolManager:
    """Keep-alive connections to the gateway, shared by a process's sending threads: a
    province's reminders are hundreds of thousands of requests to one gateway, and a new
    connection for each costs more than the request. One pool per process (`pid`): a forked
    worker must not use its parent's sockets."""
    return urllib3.PoolManager(
        maxsize=max(settings.REMINDER_SEND_CONCURRENCY, 1),
        retries=False,  # a failed message is retried by the reminders' backoff, not here
        timeout=urllib3.Timeout(
            connect=settings.GATEWAY_HTTP_TIMEOUT[0], read=settings.GATEWAY_HTTP_TIMEOUT[1]
        ),
    )


class HttpSMSGateway:
    """An SMS gateway over HTTP: `POST SMS_GATEWAY_URL` with the JSON body `{"to", "text"}`,
    signed in `X-Signature`. Any answer but 2xx is a failure, so the message is tried again."""

    def send(self, *, to: str, text: str) -> None:
        body = json.dumps({"to": to, "text": text}, ensure_ascii=False).encode()
        try:
            response = _gateway_pool(os.getpid()).request(
                "POST",
                settings.SMS_GATEWAY_URL,
                body=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "X-Signature": sms_gateway_signature(body, settings.SMS_GATEWAY_KEY),
                },
            )
        except urllib3.exceptions.HTTPError as exc:
            raise SMSGatewayError(f"gateway unreachable: {exc.__class__.__name__}") from exc
        if not 200 <= response.status < 300:
            raise SMSGatewayError(f"gateway answered {response.status}")


def sms_backend() -> SMSBackend:
    if settings.SMS_GATEWAY_URL:
        return HttpSMSGateway()
    return import_string(settings.SMS_BACKEND)()  # type: ignore[no-any-return]


def receipt_url(payment: Payment) -> str:
    return settings.PORTAL_BASE_URL + reverse("receipt", args=[payment.id])


class ReceiptsInterrupted(Exception):
    """The task ran out of time: these receipts were not sent, and their claims are free."""

    def __init__(self, remaining: list[str]) -> None:
        super().__init__(f"{len(remaining)} receipt(s) left to send")
        self.remaining = remaining


def _claim(payment_ids: Sequence[str], *, force: bool) -> tuple[datetime, dict[str, Any]]:
    """Claim the receipts of these succeeded payments (not yet sent, unless `force`): a
    compare-and-set on `receipt_sent_at`, so a task delivered twice sends once. Returns the
    claim's time and what each claimed payment's receipt had before (None: never sent)."""
    mine = timezone.now()
    with transaction.atomic():
        claimable = Payment.objects.filter(
            AnyOf(F("pk"), list(payment_ids)), status=Payment.Status.SUCCEEDED
        )
        if not force:
            claimable = claimable.filter(receipt_sent_at__isnull=True)
        previous = {
            str(pk): sent_at
            for pk, sent_at in claimable.select_for_update(skip_locked=True).values_list(
                "pk", "receipt_sent_at"
            )
        }
        if previous:
            Payment.objects.filter(AnyOf(F("pk"), list(previous))).update(receipt_sent_at=mine)
    return mine, previous


def _deliver(payment: Payment, bills: list[PaymentBill]) -> None:
    email = payment.contact_email or payment.customer.email
    phone = payment.contact_phone or payment.customer.phone
    with translation.override("vi"):
        context = {
            "payment": payment,
            "bills": bills,
            "url": receipt_url(payment),
            "refund_days": settings.REFUND_WORKING_DAYS,
        }
        if email:
            send_mail(
                subject=render_to_string("payments/receipt_subject.txt", context).strip(),
                message=render_to_string("payments/receipt_email.txt", context),
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[email],
            )
        if phone:
            sms_backend().send(to=phone, text=_sms_text(payment, context["url"]))


def _sms_text(payment: Payment, url: str) -> str:
    """The receipt SMS (unaccented Vietnamese, as SMS gateways carry it); a payment that paid
    nothing, or only part, says what goes back, how and when."""
    days = settings.REFUND_WORKING_DAYS
    if payment.needs_refund and payment.refund_amount >= payment.amount:
        return (
            f"EVN Ha Tinh: hoa don KH {payment.customer.code} da duoc thanh toan truoc do. "
            f"So tien {format_vnd(payment.amount)} (ma GD {payment.reference}) se duoc hoan "
            f"ve tai khoan da chuyen trong {days} ngay lam viec. Chi tiet: {url}"
        )
    text = (
        f"EVN Ha Tinh: da nhan {format_vnd(payment.amount)} tien dien "
        f"KH {payment.customer.code}, ma GD {payment.reference}."
    )
    if payment.needs_refund:
        text += (
            f" {format_vnd(payment.refund_amount)} se duoc hoan ve tai khoan da chuyen "
            f"trong {days} ngay lam viec."
        )
    return f"{text} Bien nhan: {url}"


def receipts_send(
    *, payment_ids: Sequence[str], force: bool = False
) -> tuple[list[str], dict[str, BaseException]]:
    """Send the receipts of succeeded payments, each once (again only when `force`, by an
    agent): claimed together, read together (three queries whatever their number), sent one by
    one. Returns (the ids sent, the errors of those that failed); a failed one's claim is given
    back as it was, so a retry sends it. A receipt another task claimed is left to it."""
    mine, previous = _claim(payment_ids, force=force)
    if not previous:
        return [], {}
    payments = Payment.objects.select_related("customer", "partner").filter(
        AnyOf(F("pk"), list(previous))
    )
    bills: dict[str, list[PaymentBill]] = {}
    for line in (
        PaymentBill.objects.select_related("bill")
        .filter(AnyOf(F("payment"), list(previous)))
        .order_by("bill__period")
    ):
        bills.setdefault(str(line.payment_id), []).append(line)
    sent: list[str] = []
    failed: dict[str, BaseException] = {}

    def give_back(key: str) -> None:
        # Only our own claim, as it was: a forced resend that fails keeps the first receipt's
        # time, and a claim another task has taken since is left alone.
        Payment.objects.filter(pk=key, receipt_sent_at=mine).update(receipt_sent_at=previous[key])

    position = {str(pk): index for index, pk in enumerate(payment_ids)}
    ordered = sorted(payments, key=lambda payment: position[str(payment.pk)])
    for index, payment in enumerate(ordered):
        key = str(payment.pk)
        try:
            _deliver(payment, bills.get(key, []))
        except SoftTimeLimitExceeded:
            # A slow mail server: what is not sent yet is given back for a task of its own.
            rest = [str(other.pk) for other in ordered[index:]]
            for other in rest:
                give_back(other)
            raise ReceiptsInterrupted(rest) from None
        except Exception as exc:  # noqa: BLE001 - one bad receipt must not hold back the others
            give_back(key)
            failed[key] = exc
            continue
        sent.append(key)
    return sent, failed


def receipt_send(*, payment_id: str, force: bool = False) -> bool:
    """The receipt of one payment (a batch of one); raises what sending raised, so the task
    that sends it retries."""
    sent, failed = receipts_send(payment_ids=[payment_id], force=force)
    if failed:
        raise failed[payment_id]
    return bool(sent)
