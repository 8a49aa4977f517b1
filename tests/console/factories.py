"""Payments, transfers and paid bills in the states the console deals with."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from django.utils import timezone

from customers.models import Bill, Customer, ServiceArea
from payments import services
from payments.models import BankTransfer, Partner, Payment
from tests.factories import BillFactory, CustomerFactory, customer_with_bills

IPN = services.Report(source=services.Source.IPN)
_numbers = itertools.count(1)


def redirect_payment(customer: Customer, **kwargs: Any) -> Payment:
    return services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX", **kwargs
    ).payment


def vietqr_payment(customer: Customer, **kwargs: Any) -> Payment:
    return services.payment_start(customer_code=customer.code, method="vietqr", **kwargs).payment


def succeeded_payment(customer: Customer | None = None, **kwargs: Any) -> Payment:
    if customer is None:
        customer, _ = customer_with_bills(unpaid=1)
    payment = vietqr_payment(customer, **kwargs)
    services.payment_mark_succeeded(payment_id=payment.id, report=IPN, provider_txn_id="FT1")
    payment.refresh_from_db()
    return payment


def payment_needing_refund(customer: Customer | None = None) -> Payment:
    """Two payments raced for one bill: the second one's money must go back."""
    if customer is None:
        customer, _ = customer_with_bills(unpaid=1)
    # By two methods: a second start by the same method would be handed the first payment.
    first, second = vietqr_payment(customer), redirect_payment(customer)
    services.payment_mark_succeeded(payment_id=first.id, report=IPN)
    services.payment_mark_succeeded(payment_id=second.id, report=IPN)
    second.refresh_from_db()
    assert second.needs_refund
    return second


def transfer(
    *,
    amount: int,
    content: str = "CHUYEN TIEN DIEN",
    status: str = BankTransfer.Status.UNMATCHED,
    occurred_at: datetime.datetime | None = None,
) -> BankTransfer:
    return BankTransfer.objects.create(
        partner=Partner.objects.get(code="VCB"),
        source=BankTransfer.Source.WEBHOOK,
        external_id=f"FT{next(_numbers):08d}",
        account_number="0011004321987",
        amount=amount,
        content=content,
        occurred_at=occurred_at or timezone.now(),
        status=status,
    )


# --- The dashboard's hand-computed month --------------------------------------------------------
def area(code: str, name: str) -> ServiceArea:
    return ServiceArea.objects.get_or_create(code=code, defaults={"name": name})[0]


def billed(customer: Customer, period: datetime.date, amount: int = 300_000) -> Bill:
    return BillFactory(customer=customer, period=period, amount=amount)


def paid(
    bill: Bill,
    *,
    method: str,
    partner: str | None,
    status: str = Payment.Status.SUCCEEDED,
    pays_bill: bool = True,
    needs_refund: bool = False,
) -> Payment:
    """A payment of `bill` as the services leave it: only the payment that paid a bill is its
    `paid_by`; a duplicate keeps `needs_refund`, a reversed one leaves the bill unpaid."""
    now = timezone.now()
    payment = Payment.objects.create(
        reference=f"PDEMO{next(_numbers):06d}",
        customer=bill.customer,
        amount=bill.amount,
        method=method,
        partner=Partner.objects.get(code=partner) if partner else None,
        status=status,
        succeeded_at=now,
        needs_refund=needs_refund,
        refund_amount=bill.amount if needs_refund else 0,
    )
    payment.lines.create(bill=bill, amount=bill.amount, applied=pays_bill)
    if pays_bill:
        bill.status, bill.paid_at, bill.paid_by = Bill.Status.PAID, now, payment
        bill.save(update_fields=["status", "paid_at", "paid_by"])
    return payment


def customer_in(service_area: ServiceArea, name: str = "Nguyễn Văn An", **kwargs: Any) -> Customer:
    return CustomerFactory(
        service_area=service_area,
        code=f"{service_area.code}{next(_numbers):07d}",
        name=name,
        **kwargs,
    )
