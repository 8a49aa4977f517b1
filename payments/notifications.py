"""Receipts: an e-mail through Django's mail backends and an SMS through a pluggable backend."""

from __future__ import annotations

import logging
from typing import Protocol

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.module_loading import import_string

from payments.models import Payment
from portal.templatetags.portal_format import format_vnd

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


def sms_backend() -> SMSBackend:
    return import_string(settings.SMS_BACKEND)()  # type: ignore[no-any-return]


def receipt_url(payment: Payment) -> str:
    return settings.PORTAL_BASE_URL + reverse("receipt", args=[payment.id])


def receipt_send(*, payment_id: str, force: bool = False) -> bool:
    """Send the receipt of a succeeded payment once (again only when `force`, by an agent).

    The claim is a compare-and-set on `receipt_sent_at`, so a task delivered twice sends once;
    if sending fails the claim is given back as it was and the task retries.
    """
    claimed = Payment.objects.filter(pk=payment_id, status=Payment.Status.SUCCEEDED)
    previous = claimed.values_list("receipt_sent_at", flat=True).first()
    claimed = claimed.filter(receipt_sent_at=previous) if previous else claimed
    if not force:
        claimed = claimed.filter(receipt_sent_at__isnull=True)
    mine = timezone.now()
    if not claimed.update(receipt_sent_at=mine):
        return False
    payment = Payment.objects.select_related("customer", "partner").get(pk=payment_id)
    email = payment.contact_email or payment.customer.email
    phone = payment.contact_phone or payment.customer.phone
    try:
        with translation.override("vi"):
            context = {
                "payment": payment,
                "bills": list(payment.lines.select_related("bill").order_by("bill__period")),
                "url": receipt_url(payment),
            }
            if email:
                send_mail(
                    subject=render_to_string("payments/receipt_subject.txt", context).strip(),
                    message=render_to_string("payments/receipt_email.txt", context),
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=[email],
                )
            if phone:
                sms_backend().send(
                    to=phone,
                    text=(
                        f"EVN Ha Tinh: da nhan {format_vnd(payment.amount)} tien dien "
                        f"KH {payment.customer.code}, ma GD {payment.reference}. "
                        f"Bien nhan: {context['url']}"
                    ),
                )
    except Exception:
        # Give back only our own claim, as it was: a forced resend that fails keeps the first
        # receipt's time, and a claim another task has taken since is left alone.
        Payment.objects.filter(pk=payment_id, receipt_sent_at=mine).update(receipt_sent_at=previous)
        raise
    return True
