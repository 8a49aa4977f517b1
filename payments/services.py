"""Every change to a payment's state, and to the bills it pays, happens here.

Rules (DESIGN.md, "Payment state machine"):
- each transition runs in `transaction.atomic()` and locks the payment row, then its bills in id
  order, so concurrent reports about one payment are applied one at a time and never deadlock;
- each transition checks the current state and writes a `PaymentEvent`;
- the same outcome reported twice is a no-op (`Outcome.ALREADY_DONE`); a contradicting report
  is recorded and flagged for an agent, never applied;
- success marks every covered bill paid; a bill already paid by another payment turns the money
  for it into a refund the agents must make (`needs_refund`): money is never ignored.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from customers.models import AuditEntry, Bill, Customer
from customers.selectors import bills_cache_forget
from payments import references
from payments.models import (
    BankTransfer,
    InboundMessage,
    Partner,
    Payment,
    PaymentBill,
    PaymentEvent,
)
from payments.queue import enqueue_after_commit

logger = logging.getLogger(__name__)

Status = Payment.Status
Source = PaymentEvent.Source


# --- Errors -------------------------------------------------------------------------------------
class PaymentError(Exception):
    """A domain rule refused the request. `code` is the contract's error code."""

    code = "payment_error"
    http_status = 400

    def __init__(self, message: str = "", **context: Any) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.context = context


class CustomerNotFound(PaymentError):
    code, http_status = "customer_not_found", 404


class BillNotFound(PaymentError):
    code, http_status = "bill_not_found", 404


class BillAlreadyPaid(PaymentError):
    code, http_status = "bill_already_paid", 409


class NothingToPay(PaymentError):
    code, http_status = "nothing_to_pay", 409


class InvalidPartner(PaymentError):
    code, http_status = "invalid_partner", 400


class AmountMismatch(PaymentError):
    code, http_status = "amount_mismatch", 422


class InvalidTransition(PaymentError):
    code, http_status = "invalid_transition", 409


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    NEEDS_REFUND = "needs_refund"
    ALREADY_DONE = "already_done"
    FLAGGED = "flagged"


@dataclass(frozen=True)
class Report:
    """Who says what about a payment: the source, the inbox message behind it, a staff member."""

    source: str
    message: InboundMessage | None = None
    actor: Any = None
    detail: dict[str, Any] | None = None


# --- Reading under lock -------------------------------------------------------------------------
def _lock_payment(payment_id: Any) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


def _lock_bills(payment: Payment) -> list[Bill]:
    bill_ids = list(payment.lines.values_list("bill_id", flat=True))
    return list(Bill.objects.select_for_update().filter(id__in=bill_ids).order_by("id"))


def _record(
    payment: Payment,
    *,
    report: Report,
    from_status: str,
    to_status: str,
    detail: dict[str, Any] | None = None,
) -> PaymentEvent:
    merged = {**(report.detail or {}), **(detail or {})}
    return PaymentEvent.objects.create(
        payment=payment,
        from_status=from_status,
        to_status=to_status,
        source=report.source,
        detail=merged,
        actor=report.actor,
        message=report.message,
    )


def _audit(
    *, actor: Any, action: str, payment: Payment, reason: str = "", detail: dict | None = None
) -> None:
    if actor is None:
        return
    AuditEntry.objects.create(
        actor=actor,
        action=action,
        customer_id=payment.customer_id,
        payment=payment,
        target=payment.reference,
        reason=reason,
        detail=detail or {},
    )


def _after_settlement(payment: Payment) -> None:
    """Side effects of a settled payment, sent only once the transaction is committed."""
    from payments import tasks  # tasks import this module

    enqueue_after_commit(tasks.send_receipt, str(payment.id))
    customer_code = payment.customer.code
    transaction.on_commit(lambda: bills_cache_invalidate(customer_code=customer_code))


def bills_cache_invalidate(*, customer_code: str) -> None:
    """Forget the cached lookup of this customer's bills, which a settlement just changed."""
    bills_cache_forget(customer_codes=[customer_code])


# --- Creating payments --------------------------------------------------------------------------
def _unpaid_bills_for(
    customer: Customer, bill_numbers: Sequence[str] | None, *, lock: bool
) -> list[Bill]:
    bills: QuerySet[Bill] = customer.bills.all()
    if lock:
        bills = bills.select_for_update()
    if bill_numbers:
        wanted = list(dict.fromkeys(bill_numbers))
        found = {bill.number: bill for bill in bills.filter(number__in=wanted).order_by("id")}
        missing = [number for number in wanted if number not in found]
        if missing:
            raise BillNotFound(
                "These bills do not belong to this customer: " + ", ".join(missing),
                bill_numbers=missing,
            )
        paid = [number for number in wanted if found[number].is_paid]
        if paid:
            raise BillAlreadyPaid("These bills are already paid: " + ", ".join(paid), bills=paid)
        return sorted(found.values(), key=lambda bill: bill.id)
    unpaid = list(bills.filter(status=Bill.Status.UNPAID).order_by("id"))
    if not unpaid:
        raise NothingToPay("This customer has no unpaid bills.")
    return unpaid


def _new_reference() -> str:
    for _attempt in range(10):
        reference = references.generate()
        if not Payment.objects.filter(reference=reference).exists():
            return reference
    raise RuntimeError("could not find a free payment reference")  # 32^8 codes: never in practice


def _partner_for(method: str, partner_code: str | None) -> Partner | None:
    if method == Payment.Method.VIETQR:
        if partner_code:
            raise InvalidPartner("A VietQR payment does not take a partner.")
        # The bank holding the utility's account receives VietQR transfers.
        return Partner.objects.filter(napas_bin=settings.VIETQR_BIN).first()
    if not partner_code:
        raise InvalidPartner("Choose the bank to pay through.")
    partner = Partner.objects.filter(code=partner_code.strip().upper()).first()
    if partner is None or not partner.is_usable:
        raise InvalidPartner(f"{partner_code} is not a partner you can pay through.")
    if method == Payment.Method.REDIRECT and not partner.offers_redirect:
        raise InvalidPartner(f"{partner.code} does not offer a payment page.")
    if method == Payment.Method.COLLECTION and not partner.collects:
        raise InvalidPartner(f"{partner.code} does not collect bills.")
    if method == Payment.Method.CASH and not partner.is_cash:
        raise InvalidPartner(f"{partner.code} is not a cash channel.")
    return partner


@transaction.atomic
def payment_create(
    *,
    customer_code: str,
    method: str,
    bill_numbers: Sequence[str] | None = None,
    partner_code: str | None = None,
    source: str = Source.API,
    actor: Any = None,
    contact_email: str = "",
    contact_phone: str = "",
) -> Payment:
    """Start a payment of the named bills (all unpaid bills by default); status `pending`.

    Raises CustomerNotFound, BillNotFound, BillAlreadyPaid, NothingToPay, InvalidPartner.
    """
    customer = Customer.objects.filter(code=customer_code, is_active=True).first()
    if customer is None:
        raise CustomerNotFound("No customer has this code.")
    partner = _partner_for(method, partner_code)
    bills = _unpaid_bills_for(customer, bill_numbers, lock=False)
    now = timezone.now()
    payment = Payment.objects.create(
        reference=_new_reference(),
        customer=customer,
        amount=sum(bill.amount for bill in bills),
        method=method,
        partner=partner,
        status=Status.PENDING,
        created_at=now,
        expires_at=now + settings.PAYMENT_TTL,
        # The first status check of a redirect payment, should its IPN never come.
        next_poll_at=now + settings.GATEWAY_POLL_SCHEDULE[0]
        if method == Payment.Method.REDIRECT
        else None,
        contact_email=contact_email,
        contact_phone=contact_phone,
    )
    PaymentBill.objects.bulk_create(
        [PaymentBill(payment=payment, bill=bill, amount=bill.amount) for bill in bills]
    )
    _record(
        payment,
        report=Report(source=source, actor=actor),
        from_status=Status.CREATED,
        to_status=Status.PENDING,
        detail={"bills": [bill.number for bill in bills], "amount": payment.amount},
    )
    return payment


# --- Settling -----------------------------------------------------------------------------------
SETTLEABLE = frozenset({Status.PENDING, Status.EXPIRED})


def _apply_success(
    payment: Payment, *, report: Report, provider_txn_id: str, at: datetime | None
) -> Outcome:
    """Mark the payment succeeded and pay its bills; called with the payment row locked."""
    bills = {bill.id: bill for bill in _lock_bills(payment)}
    now = timezone.now()
    paid_at = at or now
    refund = 0
    already_paid: list[str] = []
    lines = list(payment.lines.all())
    for line in lines:
        bill = bills[line.bill_id]
        if bill.is_paid:
            refund += line.amount
            already_paid.append(bill.number)
            continue
        bill.status, bill.paid_at, bill.paid_by = Bill.Status.PAID, paid_at, payment
        bill.save(update_fields=["status", "paid_at", "paid_by"])
        line.applied = True
        line.save(update_fields=["applied"])
    previous = payment.status
    payment.status = Status.SUCCEEDED
    payment.succeeded_at = paid_at
    payment.next_poll_at = None
    if provider_txn_id and not payment.provider_txn_id:
        payment.provider_txn_id = provider_txn_id
    if refund:
        payment.needs_refund = True
        payment.refund_amount = refund
    payment.save(
        update_fields=[
            "status",
            "succeeded_at",
            "next_poll_at",
            "provider_txn_id",
            "needs_refund",
            "refund_amount",
            "updated_at",
        ]
    )
    detail: dict[str, Any] = {"provider_txn_id": provider_txn_id} if provider_txn_id else {}
    if refund:
        detail.update({"needs_refund": refund, "bills_already_paid": already_paid})
    _record(payment, report=report, from_status=previous, to_status=Status.SUCCEEDED, detail=detail)
    _after_settlement(payment)
    return Outcome.NEEDS_REFUND if refund else Outcome.APPLIED


def _flag(payment: Payment, *, report: Report, reason: str, detail: dict | None = None) -> Outcome:
    payment.needs_review = True
    payment.review_reason = (
        f"{payment.review_reason}\n{reason}".strip() if payment.review_reason else reason
    )
    payment.save(update_fields=["needs_review", "review_reason", "updated_at"])
    _record(
        payment,
        report=report,
        from_status=payment.status,
        to_status=payment.status,
        detail={"flagged": reason, **(detail or {})},
    )
    return Outcome.FLAGGED


@transaction.atomic
def payment_mark_succeeded(
    *,
    payment_id: Any,
    report: Report,
    amount: int | None = None,
    provider_txn_id: str = "",
    at: datetime | None = None,
) -> Outcome:
    """A bank proved the money moved. Pending or expired payments settle; repeats are no-ops.

    Raises AmountMismatch (nothing changes) when `amount` differs from the payment's amount.
    A success reported for a failed or cancelled payment is flagged for an agent.
    """
    payment = _lock_payment(payment_id)
    if amount is not None and amount != payment.amount:
        raise AmountMismatch(
            f"Expected {payment.amount} VND, the bank reported {amount} VND.",
            expected=payment.amount,
            received=amount,
        )
    if payment.status in (Status.SUCCEEDED, Status.REFUNDED, Status.REVERSED):
        if (
            provider_txn_id
            and payment.provider_txn_id
            and provider_txn_id != payment.provider_txn_id
        ):
            # A second, different bank transaction for the same payment: more money arrived.
            return _flag(
                payment,
                report=report,
                reason=f"A second bank transaction {provider_txn_id} reported success.",
                detail={"provider_txn_id": provider_txn_id},
            )
        return Outcome.ALREADY_DONE
    if payment.status not in SETTLEABLE:
        return _flag(
            payment,
            report=report,
            reason=f"The bank reported success for a {payment.status} payment.",
            detail={"provider_txn_id": provider_txn_id, "amount": amount},
        )
    return _apply_success(payment, report=report, provider_txn_id=provider_txn_id, at=at)


@transaction.atomic
def payment_mark_failed(*, payment_id: Any, report: Report, reason: str = "") -> Outcome:
    """The bank says the payment did not go through (declined, cancelled at the bank, ...)."""
    payment = _lock_payment(payment_id)
    if payment.status == Status.FAILED:
        return Outcome.ALREADY_DONE
    if payment.status in (Status.SUCCEEDED, Status.REFUNDED, Status.REVERSED):
        return _flag(
            payment,
            report=report,
            reason=f"The bank reported failure ({reason}) for a {payment.status} payment.",
        )
    if payment.status not in SETTLEABLE:
        # Cancelled by the customer, then declined by the bank: the same end, nothing to do.
        _record(
            payment,
            report=report,
            from_status=payment.status,
            to_status=payment.status,
            detail={"ignored_failure": reason},
        )
        return Outcome.ALREADY_DONE
    previous = payment.status
    payment.status = Status.FAILED
    payment.next_poll_at = None
    payment.save(update_fields=["status", "next_poll_at", "updated_at"])
    _record(
        payment,
        report=report,
        from_status=previous,
        to_status=Status.FAILED,
        detail={"reason": reason},
    )
    return Outcome.APPLIED


@transaction.atomic
def payment_cancel(*, payment_id: Any, report: Report) -> Outcome:
    """The customer gave up on a pending payment (or an agent cancelled it)."""
    payment = _lock_payment(payment_id)
    if payment.status == Status.CANCELLED:
        return Outcome.ALREADY_DONE
    if payment.status != Status.PENDING:
        raise InvalidTransition(f"A {payment.status} payment cannot be cancelled.")
    payment.status = Status.CANCELLED
    payment.next_poll_at = None
    payment.save(update_fields=["status", "next_poll_at", "updated_at"])
    _record(payment, report=report, from_status=Status.PENDING, to_status=Status.CANCELLED)
    return Outcome.APPLIED


@transaction.atomic
def payment_expire(*, payment_id: Any, now: datetime | None = None) -> Outcome:
    """A pending payment whose time ran out. Late money may still settle it (expired→succeeded)."""
    now = now or timezone.now()
    payment = _lock_payment(payment_id)
    if payment.status == Status.EXPIRED:
        return Outcome.ALREADY_DONE
    if payment.status != Status.PENDING:
        raise InvalidTransition(f"A {payment.status} payment cannot expire.")
    if payment.expires_at is None or payment.expires_at > now:
        raise InvalidTransition("This payment has not reached its expiry time.")
    payment.status = Status.EXPIRED
    payment.save(update_fields=["status", "updated_at"])
    _record(
        payment,
        report=Report(source=Source.SYSTEM),
        from_status=Status.PENDING,
        to_status=Status.EXPIRED,
    )
    return Outcome.APPLIED


def payments_expire_stale(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire pending payments past their expiry time; returns how many expired."""
    now = now or timezone.now()
    due = list(
        Payment.objects.filter(status=Status.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    expired = 0
    for payment_id in due:
        try:
            if payment_expire(payment_id=payment_id, now=now) == Outcome.APPLIED:
                expired += 1
        except InvalidTransition:
            continue  # settled meanwhile: nothing to expire
    return expired


@transaction.atomic
def payment_flag_review(*, payment_id: Any, report: Report, reason: str) -> Outcome:
    """Record a report that does not fit what we know, for an agent to look at."""
    return _flag(_lock_payment(payment_id), report=report, reason=reason)


@transaction.atomic
def payment_refund(*, payment_id: Any, actor: Any, note: str) -> Outcome:
    """A supervisor gave back money flagged `needs_refund`. Audited.

    A payment that paid none of its bills becomes `refunded`; one that paid some keeps
    `succeeded` and loses the flag.
    """
    if not note.strip():
        raise PaymentError("Say how and when the money was given back.")
    payment = _lock_payment(payment_id)
    if not payment.needs_refund:
        raise InvalidTransition("This payment has nothing waiting to be refunded.")
    applied = payment.lines.filter(applied=True).exists()
    previous = payment.status
    payment.needs_refund = False
    payment.refunded_at = timezone.now()
    if not applied:
        payment.status = Status.REFUNDED
    payment.save(update_fields=["needs_refund", "refunded_at", "status", "updated_at"])
    report = Report(source=Source.AGENT, actor=actor)
    _record(
        payment,
        report=report,
        from_status=previous,
        to_status=payment.status,
        detail={"refunded": payment.refund_amount, "note": note},
    )
    _audit(
        actor=actor,
        action="payment_refund",
        payment=payment,
        reason=note,
        detail={"amount": payment.refund_amount},
    )
    return Outcome.APPLIED


@transaction.atomic
def payment_review_clear(*, payment_id: Any, actor: Any, note: str) -> Outcome:
    """A supervisor looked at a flagged report and settled it (with the bank, the customer, or
    a refund recorded elsewhere). The flag goes; the report stays in the history. Audited."""
    if not note.strip():
        raise PaymentError("Say what was found and what was done.")
    payment = _lock_payment(payment_id)
    if not payment.needs_review:
        raise InvalidTransition("This payment is not waiting for a review.")
    payment.needs_review = False
    payment.save(update_fields=["needs_review", "updated_at"])
    _record(
        payment,
        report=Report(source=Source.AGENT, actor=actor),
        from_status=payment.status,
        to_status=payment.status,
        detail={"reviewed": note},
    )
    _audit(actor=actor, action="payment_review", payment=payment, reason=note)
    return Outcome.APPLIED


@transaction.atomic
def payment_reverse(*, payment_id: Any, report: Report, reason: str) -> Outcome:
    """The collecting partner took a payment back: its bills are unpaid again."""
    payment = _lock_payment(payment_id)
    if payment.status == Status.REVERSED:
        return Outcome.ALREADY_DONE
    if payment.status != Status.SUCCEEDED:
        raise InvalidTransition(f"A {payment.status} payment cannot be reversed.")
    bills = {bill.id: bill for bill in _lock_bills(payment)}
    restored = []
    for line in payment.lines.filter(applied=True):
        bill = bills[line.bill_id]
        bill.status, bill.paid_at, bill.paid_by = Bill.Status.UNPAID, None, None
        bill.save(update_fields=["status", "paid_at", "paid_by"])
        line.applied = False
        line.save(update_fields=["applied"])
        restored.append(bill.number)
    payment.status = Status.REVERSED
    # Money for bills paid elsewhere goes back with the reversal too.
    payment.needs_refund = False
    payment.save(update_fields=["status", "needs_refund", "updated_at"])
    _record(
        payment,
        report=report,
        from_status=Status.SUCCEEDED,
        to_status=Status.REVERSED,
        detail={"reason": reason, "bills_unpaid_again": restored},
    )
    customer_code = payment.customer.code
    transaction.on_commit(lambda: bills_cache_invalidate(customer_code=customer_code))
    return Outcome.APPLIED


# --- Channels that settle at once ---------------------------------------------------------------
@transaction.atomic
def payment_record_settled(
    *,
    customer_code: str,
    method: str,
    partner_code: str,
    bill_numbers: Sequence[str],
    report: Report,
    provider_txn_id: str = "",
    amount: int | None = None,
    paid_at: datetime | None = None,
) -> Payment:
    """A payment that is already done when we hear of it: cash at a counter, a partner's app.

    The bills are locked before anything is written, so two channels racing for one bill
    cannot both take it: the loser gets BillAlreadyPaid and nothing is recorded.
    Raises AmountMismatch when `amount` is not the exact sum of the bills.
    """
    customer = Customer.objects.filter(code=customer_code, is_active=True).first()
    if customer is None:
        raise CustomerNotFound("No customer has this code.")
    partner = _partner_for(method, partner_code)
    bills = _unpaid_bills_for(customer, bill_numbers, lock=True)
    total = sum(bill.amount for bill in bills)
    if amount is not None and amount != total:
        raise AmountMismatch(
            f"The bills come to {total} VND, not {amount} VND.", expected=total, received=amount
        )
    now = timezone.now()
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                reference=_new_reference(),
                customer=customer,
                amount=total,
                method=method,
                partner=partner,
                status=Status.PENDING,
                provider_txn_id=provider_txn_id,
                created_at=now,
            )
    except IntegrityError as exc:
        raise PaymentError("This bank transaction id was already used.") from exc
    PaymentBill.objects.bulk_create(
        [PaymentBill(payment=payment, bill=bill, amount=bill.amount) for bill in bills]
    )
    _record(
        payment,
        report=report,
        from_status=Status.CREATED,
        to_status=Status.PENDING,
        detail={"bills": [bill.number for bill in bills], "amount": total},
    )
    _apply_success(payment, report=report, provider_txn_id=provider_txn_id, at=paid_at or now)
    return payment


def payment_record_cash(
    *,
    customer_code: str,
    bill_numbers: Sequence[str],
    actor: Any,
    partner_code: str = "COUNTER",
    note: str = "",
) -> Payment:
    """An agent took cash for these bills at a counter (or a collector at the door). Audited."""
    with transaction.atomic():
        payment = payment_record_settled(
            customer_code=customer_code,
            method=Payment.Method.CASH,
            partner_code=partner_code,
            bill_numbers=bill_numbers,
            report=Report(source=Source.AGENT, actor=actor, detail={"note": note}),
        )
        _audit(
            actor=actor,
            action="cash_payment",
            payment=payment,
            reason=note,
            detail={"amount": payment.amount, "bills": list(bill_numbers)},
        )
    return payment


def payment_set_poll_schedule(*, payment_id: Any, next_poll_at: datetime | None) -> None:
    """Record when the poller should next ask the bank; only pending or expired redirects."""
    Payment.objects.filter(pk=payment_id, status__in=[Status.PENDING, Status.EXPIRED]).update(
        next_poll_at=next_poll_at, poll_count=F("poll_count") + 1
    )


# --- Bank transfers that wait for an agent ------------------------------------------------------
OPEN_TRANSFER_STATUSES = frozenset(
    {
        BankTransfer.Status.RECEIVED,
        BankTransfer.Status.UNMATCHED,
        BankTransfer.Status.WRONG_AMOUNT,
        BankTransfer.Status.NEEDS_REFUND,
    }
)


def _lock_open_transfer(transfer_id: Any) -> BankTransfer:
    transfer = BankTransfer.objects.select_for_update().get(pk=transfer_id)
    if transfer.status not in OPEN_TRANSFER_STATUSES:
        raise InvalidTransition(f"This transfer is already {transfer.get_status_display()}.")
    return transfer


@transaction.atomic
def transfer_assign(*, transfer_id: Any, payment_id: Any, actor: Any, reason: str) -> Outcome:
    """An agent recognised whose money an unmatched transfer is: settle that payment with it.

    The amounts must match exactly (AmountMismatch otherwise: resolve the transfer instead).
    Locks the transfer, then the payment and its bills, like automatic matching does. Audited.
    """
    if not reason.strip():
        raise PaymentError("Say how you recognised the payment.")
    transfer = _lock_open_transfer(transfer_id)
    report = Report(
        source=Source.AGENT,
        actor=actor,
        message=transfer.message,
        detail={"transfer": transfer.external_id, "reason": reason},
    )
    outcome = payment_mark_succeeded(
        payment_id=payment_id, report=report, amount=transfer.amount, at=transfer.occurred_at
    )
    if outcome in (Outcome.ALREADY_DONE, Outcome.FLAGGED):
        raise InvalidTransition("This payment is already settled; resolve the transfer instead.")
    payment = Payment.objects.get(pk=payment_id)
    transfer.payment = payment
    transfer.status = BankTransfer.Status.MATCHED
    transfer.resolved_by, transfer.resolved_at = actor, timezone.now()
    transfer.reason = f"{transfer.reason}\nMatched by an agent: {reason}".strip()
    transfer.save(update_fields=["payment", "status", "resolved_by", "resolved_at", "reason"])
    _audit(
        actor=actor,
        action="transfer_assign",
        payment=payment,
        reason=reason,
        detail={"transfer": transfer.external_id, "amount": transfer.amount},
    )
    return outcome


@transaction.atomic
def transfer_resolve(*, transfer_id: Any, actor: Any, note: str) -> None:
    """An agent settled a transfer outside the portal (returned it, found it was not ours)."""
    if not note.strip():
        raise PaymentError("Say what was done with this money.")
    transfer = _lock_open_transfer(transfer_id)
    transfer.status = BankTransfer.Status.RESOLVED
    transfer.resolved_by, transfer.resolved_at = actor, timezone.now()
    transfer.reason = f"{transfer.reason}\nResolved: {note}".strip()
    transfer.save(update_fields=["status", "resolved_by", "resolved_at", "reason"])
    AuditEntry.objects.create(
        actor=actor,
        action="transfer_resolve",
        payment=transfer.payment,
        customer_id=transfer.payment.customer_id if transfer.payment else None,
        target=transfer.external_id,
        reason=note,
        detail={"amount": transfer.amount},
    )
