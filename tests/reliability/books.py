"""How each scenario ends: the integrity check, and the figures of what was lost or doubled."""

from __future__ import annotations

import datetime
import io
from collections.abc import Iterable
from typing import Any

from django.core.management import call_command
from django.db.models import Count, Q

from customers.models import Bill
from payments.integrity import IntegrityReport, integrity_check
from payments.models import BankTransfer, InboundMessage, Payment, PaymentBill, PaymentEvent
from tests.reliability.support import Figures


def doubled() -> int:
    """Money applied more than once, anywhere in the books.

    A payment that made the transition to `succeeded` twice, a payment matched by two transfers,
    a bill applied by two payments (the database refuses that one, so it stays 0).
    """
    succeeded_twice = (
        PaymentEvent.objects.filter(to_status=Payment.Status.SUCCEEDED)
        .exclude(from_status=Payment.Status.SUCCEEDED)
        .values("payment")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    matched_twice = (
        BankTransfer.objects.filter(status=BankTransfer.Status.MATCHED)
        .values("payment")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    bill_twice = (
        PaymentBill.objects.filter(applied=True)
        .values("bill")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return succeeded_twice + matched_twice + bill_twice


def unsettled(payments: Iterable[Payment]) -> int:
    """Payments the banks paid that are still not settled: money lost."""
    ids = [payment.pk for payment in payments]
    return Payment.objects.filter(pk__in=ids).exclude(status=Payment.Status.SUCCEEDED).count()


def unprocessed() -> int:
    return InboundMessage.objects.filter(processed_at__isnull=True).count()


def all_processed() -> bool:
    return not InboundMessage.objects.filter(processed_at__isnull=True).exists()


def unpaid_bills_of(payments: Iterable[Payment]) -> int:
    ids = [payment.pk for payment in payments]
    return Bill.objects.filter(
        Q(payment_lines__payment_id__in=ids), status=Bill.Status.UNPAID
    ).count()


def check_books() -> IntegrityReport:
    """`check_integrity` must pass, with every message processed (nothing left in flight)."""
    # Raises CommandError (exit status 1 from a shell) on any breach.
    call_command("check_integrity", "--in-flight-seconds", "0", stdout=io.StringIO())
    report = integrity_check(in_flight_for=datetime.timedelta(0))
    assert report.ok, report.as_text()
    return report


def close_books(figures: Figures, **values: Any) -> dict[str, Any]:
    """Every scenario ends here: the integrity check, then the figures with what it saw."""
    report = check_books()
    figures.set(
        integrity="OK: no breach",
        inbound_messages=report.totals["inbound messages"],
        settled_payments=report.totals["settled payments"],
        **values,
    )
    return figures.write()
