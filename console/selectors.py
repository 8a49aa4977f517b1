"""Reads for the console pages: work queues, a customer's whole history, transfer candidates."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from console.services import PERSONAL_DATA_VIEWS
from customers.codes import normalise
from customers.models import AuditEntry, Bill, Customer
from payments import inbox
from payments import selectors as payments_selectors
from payments.models import (
    BankTransfer,
    InboundMessage,
    Payment,
    PaymentBill,
    PaymentEvent,
    ReminderMessage,
)

TransferStatus = BankTransfer.Status
PaymentStatus = Payment.Status


@dataclass(frozen=True)
class Queue:
    """A list of things automation could not settle, oldest first, each read through an index."""

    slug: str
    title: str | Promise
    description: str | Promise
    kind: str  # "transfer", "payment" or "message"
    rows: Callable[[datetime.datetime], QuerySet[Any]]


def _transfers(status: str) -> Callable[[datetime.datetime], QuerySet[Any]]:
    # transfer_status_time (status, occurred_at) serves both the filter and the order.
    return lambda now: (
        BankTransfer.objects.filter(status=status)
        .select_related("partner", "payment")
        .order_by("occurred_at", "id")
    )


def _payments(**conditions: Any) -> Callable[[datetime.datetime], QuerySet[Any]]:
    return lambda now: (
        Payment.objects.filter(**conditions)
        .select_related("customer", "partner")
        .order_by("created_at")
    )


def _set_aside(now: datetime.datetime) -> QuerySet[Any]:
    # Read through the partial index inbox_unprocessed: only unprocessed messages are in it.
    return (
        InboundMessage.objects.filter(processed_at__isnull=True, attempts__gte=inbox.MAX_ATTEMPTS)
        .select_related("partner", "payment__customer")
        .order_by("received_at")
    )


def _overdue_pending(now: datetime.datetime) -> QuerySet[Any]:
    # The partial index payment_pending_expiry holds exactly the pending payments.
    return (
        Payment.objects.filter(status=PaymentStatus.PENDING, expires_at__lt=now)
        .select_related("customer", "partner")
        .order_by("expires_at")
    )


QUEUES: tuple[Queue, ...] = (
    Queue(
        "unmatched-transfers",
        _("Unmatched transfers"),
        _("Money received without a payment reference we could read."),
        "transfer",
        _transfers(TransferStatus.UNMATCHED),
    ),
    Queue(
        "wrong-amount-transfers",
        _("Wrong-amount transfers"),
        _("Money whose reference names a payment, but not for its exact amount."),
        "transfer",
        _transfers(TransferStatus.WRONG_AMOUNT),
    ),
    Queue(
        "settled-transfers",
        _("Transfers for settled payments"),
        _("Money for a payment that had already been paid another way."),
        "transfer",
        _transfers(TransferStatus.NEEDS_REFUND),
    ),
    Queue(
        "needs-refund",
        _("Payments to refund"),
        _("Payments that paid bills someone had already paid: the money must go back."),
        "payment",
        _payments(needs_refund=True),
    ),
    Queue(
        "overdue-pending",
        _("Pending past their expiry"),
        _("Still pending after their expiry time: the expiry worker may be stuck."),
        "payment",
        _overdue_pending,
    ),
    Queue(
        "needs-review",
        _("Payments to review"),
        _("A bank said something that contradicts what we recorded."),
        "payment",
        _payments(needs_review=True),
    ),
    Queue(
        "set-aside-messages",
        _("Bank messages set aside"),
        _("Messages the workers failed to apply ten times: each waits with its last error."),
        "message",
        _set_aside,
    ),
)
QUEUES_BY_SLUG = {queue.slug: queue for queue in QUEUES}


def queue_counts(*, now: datetime.datetime | None = None) -> list[tuple[Queue, int]]:
    """Each queue with its length: one indexed COUNT per queue."""
    now = now or timezone.now()
    return [(queue, queue.rows(now).count()) for queue in QUEUES]


# --- A customer's history -----------------------------------------------------------------------
BILLS_SHOWN = 24
PAYMENTS_PER_PAGE = 20


def customer_bills(*, customer: Customer) -> list[Bill]:
    """The latest `BILLS_SHOWN` bills, newest first, with the payment that paid each."""
    return list(customer.bills.select_related("paid_by__partner").order_by("-period")[:BILLS_SHOWN])


def customer_payments(*, customer: Customer) -> QuerySet[Payment]:
    """Every payment and attempt, newest first, with everything the page shows of each.

    Prefetched in a fixed number of queries per page (lines, events with their staff member and
    message, inbound messages, transfers), whatever the number of payments.
    """
    return (
        customer.payments.select_related("partner")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=PaymentBill.objects.select_related("bill").order_by("bill__period"),
            ),
            Prefetch(
                "events",
                queryset=PaymentEvent.objects.select_related("actor", "message").order_by(
                    "at", "id"
                ),
            ),
            Prefetch(
                "messages",
                queryset=InboundMessage.objects.select_related("partner").order_by(
                    "received_at", "id"
                ),
            ),
            Prefetch("transfers", queryset=BankTransfer.objects.order_by("occurred_at")),
        )
        .order_by("-created_at")
    )


def customer_audit(*, customer: Customer, limit: int = 50) -> list[AuditEntry]:
    """What staff did to this customer; who merely looked is on the audit page, not here, or
    every visit would push the actions off the list."""
    return list(
        customer.audit_entries.exclude(action__in=PERSONAL_DATA_VIEWS)
        .select_related("actor", "payment")
        .order_by("-at")[:limit]
    )


def customer_reminders(*, customer: Customer, limit: int = 30) -> list[ReminderMessage]:
    """The customer's newest reminders, each with the bills it names."""
    return list(
        ReminderMessage.objects.filter(customer=customer)
        .prefetch_related("lines__bill")
        .order_by("-day", "-pk")[:limit]
    )


def reminder_for_staff(*, message_id: int) -> ReminderMessage | None:
    return (
        ReminderMessage.objects.select_related("customer")
        .prefetch_related("lines__bill")
        .filter(pk=message_id)
        .first()
    )


def payment_for_staff(*, payment_id: Any) -> Payment | None:
    return payments_selectors.payment_get(payment_id=payment_id)


# --- Transfers ----------------------------------------------------------------------------------
# A VietQR payment is created before its transfer is sent (the reference comes from it);
# customers sometimes pay days later from a saved QR.
CANDIDATE_WINDOW_BEFORE = datetime.timedelta(days=7)
CANDIDATE_WINDOW_AFTER = datetime.timedelta(hours=1)
CANDIDATE_LIMIT = 20


def transfer_for_staff(*, transfer_id: Any) -> BankTransfer | None:
    return (
        BankTransfer.objects.select_related(
            "partner", "payment__customer", "message", "resolved_by"
        )
        .filter(pk=transfer_id)
        .first()
    )


def transfer_candidates(*, transfer: BankTransfer, query: str = "") -> list[Payment]:
    """Payments this transfer might be for.

    Without a query: unsettled payments (pending or expired) of exactly the transfer's amount
    created in the week before it, newest first. With a query (a payment reference or a customer
    code): that payment or that customer's unsettled payments, whatever the amount, so the agent
    sees why a wrong amount cannot be matched.
    """
    unsettled = Payment.objects.filter(
        status__in=[PaymentStatus.PENDING, PaymentStatus.EXPIRED]
    ).select_related("customer", "partner")
    query = (query or "").strip()
    if query:
        code = normalise(query)
        rows = unsettled.filter(Q(reference=query.upper()) | Q(customer__code=code))
    else:
        rows = unsettled.filter(
            amount=transfer.amount,
            created_at__gte=transfer.occurred_at - CANDIDATE_WINDOW_BEFORE,
            created_at__lte=transfer.occurred_at + CANDIDATE_WINDOW_AFTER,
        )
    return list(rows.order_by("-created_at")[:CANDIDATE_LIMIT])


def audit_entries(*, action: str = "", actor: str = "") -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.select_related("actor", "customer", "payment").order_by("-at")
    if action:
        entries = entries.filter(action=action)
    if actor:
        entries = entries.filter(actor__username=actor)
    return entries
