"""Reads of payments, shaped for the pages and APIs that show them."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Sum

from payments.models import BankTransfer, Payment, PaymentBill


def payment_get(*, payment_id: Any) -> Payment | None:
    """A payment with its customer, partner and bills (oldest period first): three queries."""
    return (
        Payment.objects.select_related("customer__service_area", "partner")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=PaymentBill.objects.select_related("bill").order_by("bill__period"),
            )
        )
        .filter(pk=payment_id)
        .first()
    )


def payment_received_short(*, payment: Payment) -> int:
    """What already arrived for this VietQR payment without making its amount: the credits kept
    as `wrong_amount` for it, when together they bring less than it (0 otherwise). A credit of
    the rest with the same note settles it (`payments.matching`)."""
    if payment.method != Payment.Method.VIETQR or payment.status != Payment.Status.PENDING:
        return 0
    total = BankTransfer.objects.filter(
        payment=payment, status=BankTransfer.Status.WRONG_AMOUNT
    ).aggregate(total=Sum("amount"))["total"]
    return total if total and total < payment.amount else 0
