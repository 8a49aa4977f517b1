"""Reads of payments, shaped for the pages and APIs that show them."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch

from payments.models import Payment, PaymentBill


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
