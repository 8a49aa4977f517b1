"""Every change to a payment's state, and to the bills it pays, happens here.

Rules (docs/architecture.md, "The payment state machine"):
- each transition runs in `transaction.atomic()` and locks the payment row, then its bills in id
  order, so concurrent reports about one payment are applied one at a time and never deadlock;
- which transitions are allowed is `payments.states`, the table; this module applies it;
- every change is written through a `Journal`: the event, the review flag, the payment's row;
- the same outcome reported twice is a no-op (`Outcome.ALREADY_DONE`); a contradicting report
  is recorded and flagged for an agent, never applied;
- success marks every covered bill paid; a bill already paid by another payment turns the money
  for it into a refund the agents must make (`needs_refund`): money is never ignored.
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Field, Q, QuerySet, Sum
from django.utils import timezone

from customers.models import AuditEntry, Bill, Customer
from customers.permissions import REFUND_PAYMENT
from customers.selectors import bills_cache_forget
from payments import notes, references, states
from payments.bulk import AnyOf, bulk_insert_rows, bulk_update_rows, instances
from payments.inbox import Claimed
from payments.models import (
    BankTransfer,
    CreditUse,
    IdempotencyKey,
    InboundMessage,
    Partner,
    Payment,
    PaymentBill,
    PaymentEvent,
)
from payments.queue import send_now
from payments.states import SETTLEABLE, Event, Verdict

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
    message: InboundMessage | Claimed | None = None
    actor: Any = None
    detail: dict[str, Any] | None = None


# --- Reading under lock -------------------------------------------------------------------------
def _lock_payment(payment_id: Any) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


def _lock_bills(payment: Payment) -> list[Bill]:
    bill_ids = list(payment.lines.values_list("bill_id", flat=True))
    return list(Bill.objects.select_for_update().filter(id__in=bill_ids).order_by("id"))


class Journal:
    """The one way to write what happened to payments: their changed rows, their events and
    their review flags, kept in order in memory, then written in a few queries (`write`).

    A single transition is a journal of one payment; a batch of settlements shares one.
    """

    PAYMENT_FIELDS = (
        "status",
        "succeeded_at",
        "next_poll_at",
        "provider_txn_id",
        "needs_refund",
        "refund_amount",
        "refunded_at",
        "needs_review",
        "review_reason",
        "updated_at",
    )
    EVENT_FIELDS = (
        "payment",
        "at",
        "from_status",
        "to_status",
        "source",
        "detail",
        "actor",
        "message",
    )

    def __init__(self, *, now: datetime | None = None) -> None:
        self.now = now or timezone.now()
        self.payments: dict[Any, Payment] = {}
        self.events: list[tuple[Any, ...]] = []

    def changed(self, payment: Payment) -> None:
        """The payment's row is written with the journal (its PAYMENT_FIELDS)."""
        payment.updated_at = self.now
        self.payments[payment.pk] = payment

    def event(
        self,
        payment: Payment,
        *,
        report: Report,
        from_status: str,
        to_status: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        actor = report.actor.pk if report.actor is not None else None
        message = report.message.pk if report.message is not None else None
        merged = {**(report.detail or {}), **(detail or {})}
        self.events.append(
            (payment.pk, self.now, from_status, to_status, report.source, merged, actor, message)
        )

    def move(
        self,
        payment: Payment,
        target: str,
        *,
        report: Report,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Change the payment's status (already allowed by `states.step`) and record it."""
        previous = payment.status
        payment.status = target
        if target not in SETTLEABLE:
            payment.next_poll_at = None
        self.changed(payment)
        self.event(payment, report=report, from_status=previous, to_status=target, detail=detail)

    def flag(
        self, payment: Payment, *, report: Report, reason: str, detail: dict[str, Any] | None = None
    ) -> Outcome:
        """A report that contradicts what we know: recorded, and flagged for an agent. The
        reason is added once: a bank repeating the same report (a poll, a retried callback) is
        recorded as an event but does not grow the reason."""
        known = payment.review_reason.splitlines() if payment.needs_review else []
        payment.review_reason = "\n".join(known if reason in known else [*known, reason])
        payment.needs_review = True
        self.changed(payment)
        self.event(
            payment,
            report=report,
            from_status=payment.status,
            to_status=payment.status,
            detail={"flagged": reason, **(detail or {})},
        )
        return Outcome.FLAGGED

    def write(self) -> None:
        bulk_update_rows(
            Payment,
            self.PAYMENT_FIELDS,
            [
                (payment.pk, *(getattr(payment, name) for name in self.PAYMENT_FIELDS))
                for payment in self.payments.values()
            ],
        )
        bulk_insert_rows(PaymentEvent, self.EVENT_FIELDS, self.events)
        self.payments, self.events = {}, []


# What a refused event would have done, as the refusal says it.
_DOING = {
    Event.OPEN: "be opened",
    Event.SUCCEED: "be settled",
    Event.FAIL: "fail",
    Event.CANCEL: "be cancelled",
    Event.EXPIRE: "expire",
    Event.REFUND_WHOLE: "be refunded",
    Event.REFUND_PART: "be refunded",
    Event.REVERSE: "be reversed",
}


def _refuse(payment: Payment, event: Event) -> InvalidTransition:
    return InvalidTransition(f"A {payment.status} payment cannot {_DOING[event]}.")


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
        return Partner.objects.receiving_bank()
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


@dataclass(frozen=True)
class Started:
    payment: Payment
    # False when an open payment of the same bills, method and partner was handed back.
    created: bool


def _open_payment_for(
    customer: Customer, bills: list[Bill], method: str, partner: Partner | None, now: datetime
) -> Payment | None:
    """The customer's pending, unexpired payment of exactly these bills by this method and
    partner, if there is one."""
    wanted = {bill.id for bill in bills}
    candidates = (
        Payment.objects.filter(
            customer=customer,
            method=method,
            partner=partner,
            status=Status.PENDING,
            expires_at__gt=now,
            amount=sum(bill.amount for bill in bills),
        )
        .prefetch_related("lines")
        .order_by("-created_at")
    )
    for payment in candidates:
        if {line.bill_id for line in payment.lines.all()} == wanted:
            return payment
    return None


@transaction.atomic
def payment_start(
    *,
    customer_code: str,
    method: str,
    bill_numbers: Sequence[str] | None = None,
    partner_code: str | None = None,
    source: str = Source.API,
    actor: Any = None,
    contact_email: str = "",
    contact_phone: str = "",
) -> Started:
    """Start a payment of the named bills (all unpaid bills by default); status `pending`.

    While a pending, unexpired payment of the same bills by the same method and partner exists,
    that payment is returned instead (`created` False): a repeated or scripted start cannot
    fill the table with pending payments that the poller would then ask the bank about.

    Raises CustomerNotFound, BillNotFound, BillAlreadyPaid, NothingToPay, InvalidPartner.
    """
    customer = Customer.objects.filter(code=customer_code, is_active=True).first()
    if customer is None:
        raise CustomerNotFound("No customer has this code.")
    partner = _partner_for(method, partner_code)
    # The bills are locked (in id order) before looking for an open payment, so two starts of
    # the same bills take turns and the second finds the first's payment. No payment row is
    # locked here, so this stays within the lock order (docs/architecture.md).
    bills = _unpaid_bills_for(customer, bill_numbers, lock=True)
    now = timezone.now()
    existing = _open_payment_for(customer, bills, method, partner, now)
    if existing is not None:
        return Started(existing, created=False)
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
    journal = Journal(now=now)
    journal.event(
        payment,
        report=Report(source=source, actor=actor),
        from_status=Status.CREATED,
        to_status=Status.PENDING,
        detail={"bills": [bill.number for bill in bills], "amount": payment.amount},
    )
    journal.write()
    return Started(payment, created=True)


def _bill_ids_named(found: Iterable[str]) -> dict[str, int]:
    """The bill each reference names as a paper bill's own (its check character right)."""
    return {ref: bill_id for ref in found if (bill_id := references.bill_id_of(ref))}


def references_naming_something(found: set[str]) -> set[str]:
    """The references that name a payment, or a bill whose payment `bill_payments_open` would
    open (amount above zero): any other is a look-alike found by chance in a payer's note."""
    known = set(Payment.objects.filter(reference__in=found).values_list("reference", flat=True))
    wanted = _bill_ids_named(found - known)
    payable = set(
        Bill.objects.filter(pk__in=wanted.values(), amount__gt=0).values_list("pk", flat=True)
    )
    return known | {ref for ref, bill_id in wanted.items() if bill_id in payable}


def bill_payments_open(*, found: Sequence[str]) -> None:
    """The standing VietQR payment of every bill a transfer names by the bill's own reference
    (printed on the paper bill and in its QR), opened when the first such transfer arrives.

    From then on the bill's money goes the way of any VietQR payment's: the exact amount pays
    the bill, another amount waits for an agent, a second payer's money is kept for a refund. It
    has no expiry: a paper bill may be paid any day.
    """
    wanted = _bill_ids_named(found)
    if not wanted:
        return
    opened = set(Payment.objects.filter(reference__in=wanted).values_list("reference", flat=True))
    bills = {
        bill.pk: bill
        for bill in Bill.objects.filter(
            pk__in=[bill_id for ref, bill_id in wanted.items() if ref not in opened],
            amount__gt=0,
        )
        .select_related("customer")
        .order_by("pk")  # two workers opening the same bills insert them in the same order
    }
    if not bills:
        return
    now = timezone.now()
    partner = _partner_for(Payment.Method.VIETQR, None)
    payments = [
        Payment(
            reference=references.bill_reference(bill.pk),
            customer=bill.customer,
            amount=bill.amount,
            method=Payment.Method.VIETQR,
            partner=partner,
            status=Status.PENDING,
            created_at=now,
        )
        for bill in bills.values()
    ]
    # Another worker may open the same bill's payment at the same moment: the unique reference
    # keeps one, and only the ones written here get their bill and their first event.
    Payment.objects.bulk_create(payments, ignore_conflicts=True)
    mine = set(Payment.objects.filter(pk__in=[p.pk for p in payments]).values_list("pk", flat=True))
    created = [payment for payment in payments if payment.pk in mine]
    bill_of = {references.bill_reference(pk): bill for pk, bill in bills.items()}
    PaymentBill.objects.bulk_create(
        [
            PaymentBill(payment=p, bill=bill_of[p.reference], amount=bill_of[p.reference].amount)
            for p in created
        ]
    )
    journal = Journal(now=now)
    for payment in created:
        journal.event(
            payment,
            report=Report(source=Source.SYSTEM),
            from_status=Status.CREATED,
            to_status=Status.PENDING,
            detail={"bills": [bill_of[payment.reference].number], "amount": payment.amount},
        )
    journal.write()


def payments_holding(
    *,
    customer_code: str,
    method: str,
    bill_numbers: Sequence[str] | None = None,
    partner_code: str | None = None,
) -> list[Payment]:
    """The customer's pending, unexpired payments that already hold some of these bills and
    that `payment_start` with these arguments would not hand back (another method or bank, or
    other bills), newest first: starting one more could see both paid. Reads only; a start that
    `payment_start` would refuse holds nothing here (it is refused there, with its reason)."""
    customer = Customer.objects.filter(code=customer_code, is_active=True).first()
    if customer is None:
        return []
    try:
        partner = _partner_for(method, partner_code)
        bills = _unpaid_bills_for(customer, bill_numbers, lock=False)
    except PaymentError:
        return []
    now = timezone.now()
    holding = Payment.objects.filter(
        customer=customer,
        status=Status.PENDING,
        expires_at__gt=now,
        lines__bill__in=[bill.id for bill in bills],
    )
    same = _open_payment_for(customer, bills, method, partner, now)
    if same is not None:
        holding = holding.exclude(pk=same.pk)
    return list(holding.distinct().order_by("-created_at"))


# --- Settling ---------------------------------------------------------------------------------
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
    [settled] = payments_mark_succeeded(
        settlements=[
            Settlement(
                payment_id=payment_id,
                report=report,
                amount=amount,
                provider_txn_id=provider_txn_id,
                at=at,
            )
        ]
    )
    if settled.outcome is None:
        raise AmountMismatch(
            f"Expected {settled.payment.amount} VND, the bank reported {amount} VND.",
            expected=settled.payment.amount,
            received=amount,
        )
    return settled.outcome


def _transition(payment: Payment, event: Event, *, report: Report, **detail: Any) -> Outcome:
    """Apply `event` to a locked payment as `states.step` says."""
    step = states.step(payment.status, event)
    journal = Journal()
    if step.verdict is Verdict.ALREADY:
        return Outcome.ALREADY_DONE
    if step.verdict is Verdict.REFUSE:
        raise _refuse(payment, event)
    if step.verdict is Verdict.FLAG:
        # Only a failure reaches here: a success for a failed payment is flagged by the settling.
        outcome = journal.flag(
            payment,
            report=report,
            reason=notes.FAILURE_FOR.say(reason=detail.get("reason", ""), status=payment.status),
        )
    elif step.verdict is Verdict.NOTE:
        journal.event(
            payment,
            report=report,
            from_status=payment.status,
            to_status=payment.status,
            detail={f"ignored_{event}": detail.get("reason", "")},
        )
        outcome = Outcome.ALREADY_DONE
    else:
        journal.move(payment, cast(str, step.target), report=report, detail=detail or None)
        outcome = Outcome.APPLIED
    journal.write()
    return outcome


@transaction.atomic
def payment_mark_failed(*, payment_id: Any, report: Report, reason: str = "") -> Outcome:
    """The bank says the payment did not go through (declined, cancelled at the bank, ...)."""
    return _transition(_lock_payment(payment_id), Event.FAIL, report=report, reason=reason)


@transaction.atomic
def payment_cancel(*, payment_id: Any, report: Report) -> Outcome:
    """The customer gave up on a pending payment (or an agent cancelled it)."""
    return _transition(_lock_payment(payment_id), Event.CANCEL, report=report)


@transaction.atomic
def payment_expire(*, payment_id: Any, now: datetime | None = None) -> Outcome:
    """A pending payment whose time ran out. Late money may still settle it (expired→succeeded)."""
    now = now or timezone.now()
    payment = _lock_payment(payment_id)
    due = payment.expires_at is not None and payment.expires_at <= now
    if not due and states.step(payment.status, Event.EXPIRE).verdict is Verdict.MOVE:
        raise InvalidTransition("This payment has not reached its expiry time.")
    return _transition(payment, Event.EXPIRE, report=Report(source=Source.SYSTEM))


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
    journal = Journal()
    outcome = journal.flag(_lock_payment(payment_id), report=report, reason=reason)
    journal.write()
    return outcome


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
    event = Event.REFUND_PART if payment.lines.filter(applied=True).exists() else Event.REFUND_WHOLE
    step = states.step(payment.status, event)
    if step.verdict is not Verdict.MOVE:
        raise _refuse(payment, event)
    journal = Journal()
    payment.needs_refund = False
    payment.refunded_at = journal.now
    journal.move(
        payment,
        cast(str, step.target),
        report=Report(source=Source.AGENT, actor=actor),
        detail={"refunded": payment.refund_amount, "note": note},
    )
    journal.write()
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
    journal = Journal()
    payment.needs_review = False
    journal.changed(payment)
    journal.event(
        payment,
        report=Report(source=Source.AGENT, actor=actor),
        from_status=payment.status,
        to_status=payment.status,
        detail={"reviewed": note},
    )
    journal.write()
    _audit(actor=actor, action="payment_review", payment=payment, reason=note)
    return Outcome.APPLIED


@transaction.atomic
def payment_reverse(*, payment_id: Any, report: Report, reason: str) -> Outcome:
    """The collecting partner took a payment back: its bills are unpaid again."""
    payment = _lock_payment(payment_id)
    step = states.step(payment.status, Event.REVERSE)
    if step.verdict is Verdict.ALREADY:
        return Outcome.ALREADY_DONE
    if step.verdict is not Verdict.MOVE:
        raise _refuse(payment, Event.REVERSE)
    bills = {bill.id: bill for bill in _lock_bills(payment)}
    restored = []
    for line in payment.lines.filter(applied=True):
        bill = bills[line.bill_id]
        bill.status, bill.paid_at, bill.paid_by = Bill.Status.UNPAID, None, None
        bill.save(update_fields=["status", "paid_at", "paid_by"])
        line.applied = False
        line.save(update_fields=["applied"])
        restored.append(bill.number)
    # Money for bills paid elsewhere goes back with the reversal too.
    payment.needs_refund = False
    journal = Journal()
    journal.move(
        payment,
        cast(str, step.target),
        report=report,
        detail={"reason": reason, "bills_unpaid_again": restored},
    )
    journal.write()
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
    journal = Journal(now=now)
    journal.event(
        payment,
        report=report,
        from_status=Status.CREATED,
        to_status=Status.PENDING,
        detail={"bills": [bill.number for bill in bills], "amount": total},
    )
    journal.write()
    payments_mark_succeeded(
        settlements=[
            Settlement(
                payment_id=payment.pk,
                report=report,
                provider_txn_id=provider_txn_id,
                at=paid_at or now,
            )
        ],
        locked={payment.pk: payment},
    )
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
    if transfer.uses.exists():
        # What is left of it is no longer its amount: apply the rest to bills, or close it.
        raise InvalidTransition("Part of this transfer already paid bills.")
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
    transfer.reason = f"{transfer.reason}\n{notes.MATCHED_BY_AGENT.say(reason=reason)}".strip()
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
    transfer.reason = f"{transfer.reason}\n{notes.RESOLVED.say(note=note)}".strip()
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


# --- Held money applied to a customer's bills ---------------------------------------------------
# Transfers kept for an agent that still hold money: no readable reference, a wrong amount, money
# for a payment that was already settled (or failed).
HELD_TRANSFER_STATUSES = frozenset(
    {
        BankTransfer.Status.UNMATCHED,
        BankTransfer.Status.WRONG_AMOUNT,
        BankTransfer.Status.NEEDS_REFUND,
    }
)
# Moving more than CREDIT_APPROVAL_ABOVE_VND of held money takes the supervisors' permission to
# give money back: a mistake here moves one household's money onto another's bills.
CREDIT_APPROVER = REFUND_PAYMENT
CREDIT_IDEMPOTENCY_SCOPE = "console:credit_apply"


class CreditNotHeld(PaymentError):
    code, http_status = "credit_not_held", 409


class NotEnoughCredit(PaymentError):
    code, http_status = "not_enough_credit", 409


class ApprovalRequired(PaymentError):
    code, http_status = "approval_required", 403


@dataclass(frozen=True)
class HeldCredit:
    """Money held for a customer: a bank transfer (`kind` "transfer") or what a payment owes
    back ("payment"), and how much of it is still held."""

    kind: str
    pk: Any
    reference: str  # the bank's reference of a transfer; a payment's reference
    amount: int
    at: datetime
    note: str
    method: str  # how the money came: the channel of the payment its bills are paid with
    partner_code: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.pk}"


@dataclass(frozen=True)
class CreditPlan:
    """How much of each chosen credit pays bills that come to `total`: the oldest first, the
    last one in part when it holds more than is left to pay."""

    total: int
    uses: list[tuple[HeldCredit, int]]
    needs_approval: bool

    @property
    def rows(self) -> list[tuple[HeldCredit, int, int]]:
        """(credit, what it gives, what it still holds after)."""
        return [(credit, used, credit.amount - used) for credit, used in self.uses]


def _transfer_uses(transfer_ids: Sequence[Any]) -> dict[Any, int]:
    rows = (
        CreditUse.objects.filter(transfer__in=list(transfer_ids))
        .values("transfer")
        .annotate(used=Sum("amount"))
        .values_list("transfer", "used")
    )
    return dict(rows)


def _credits_held(
    customer: Customer,
    *,
    transfer_ids: Sequence[Any] = (),
    payment_ids: Sequence[Any] | None = None,
    lock: bool = False,
) -> list[HeldCredit]:
    """The money held for this customer, oldest first: its transfers kept for an agent (and the
    `transfer_ids` that name no payment, whose owner the agent recognised), and its payments
    owing money back. With `payment_ids` (and `lock`) only those credits, locked in the lock
    order: transfers, then payments, each in id order."""
    transfers = BankTransfer.objects.filter(status__in=HELD_TRANSFER_STATUSES)
    unclaimed = Q(pk__in=list(transfer_ids), payment__isnull=True)
    if payment_ids is None:
        transfers = transfers.filter(Q(payment__customer=customer) | unclaimed)
    else:
        transfers = transfers.filter(
            Q(pk__in=list(transfer_ids)) & (Q(payment__customer=customer) | unclaimed)
        )
    owing = Payment.objects.filter(customer=customer, needs_refund=True, refund_amount__gt=0)
    if payment_ids is not None:
        owing = owing.filter(pk__in=list(payment_ids))
    if lock:
        transfers = transfers.select_for_update(of=("self",))
        owing = owing.select_for_update(of=("self",))
    found_transfers = list(transfers.order_by("pk"))
    found_payments = list(owing.select_related("partner").order_by("pk"))
    used = _transfer_uses([transfer.pk for transfer in found_transfers])
    credits = [
        HeldCredit(
            "transfer",
            transfer.pk,
            transfer.external_id,
            transfer.amount - used.get(transfer.pk, 0),
            transfer.occurred_at,
            transfer.content,
            Payment.Method.VIETQR,
            "",
        )
        for transfer in found_transfers
    ] + [
        HeldCredit(
            "payment",
            payment.pk,
            payment.reference,
            payment.refund_amount,
            payment.succeeded_at or payment.created_at,
            "",
            payment.method,
            payment.partner.code
            if payment.partner and payment.method != Payment.Method.VIETQR
            else "",
        )
        for payment in found_payments
    ]
    return sorted((c for c in credits if c.amount > 0), key=lambda c: (c.at, c.kind, str(c.pk)))


def credits_held(*, customer: Customer, transfer_ids: Sequence[Any] = ()) -> list[HeldCredit]:
    """The money held for this customer that an agent may apply to its unpaid bills, oldest
    first; `transfer_ids` adds transfers that name no payment (the agent knows whose they are)."""
    return _credits_held(customer, transfer_ids=transfer_ids)


def transfer_held(*, transfer: BankTransfer) -> int:
    """What a transfer kept for an agent still holds: its amount less what paid bills."""
    return transfer.amount - _transfer_uses([transfer.pk]).get(transfer.pk, 0)


def credit_plan(*, credits: Sequence[HeldCredit], total: int, actor: Any) -> CreditPlan:
    """What applying these credits to bills of `total` VND would use of each; raises
    NotEnoughCredit when together they hold less. Credits not needed are left as they are."""
    held = sum(credit.amount for credit in credits)
    if held < total:
        raise NotEnoughCredit(
            f"The chosen money holds {held} VND; the bills come to {total} VND.",
            held=held,
            total=total,
        )
    uses: list[tuple[HeldCredit, int]] = []
    left = total
    for credit in credits:
        if left == 0:
            break
        used = min(credit.amount, left)
        uses.append((credit, used))
        left -= used
    needs_approval = total > settings.CREDIT_APPROVAL_ABOVE_VND and not (
        actor is not None and actor.has_perm(CREDIT_APPROVER)
    )
    return CreditPlan(total=total, uses=uses, needs_approval=needs_approval)


def credit_apply(
    *,
    customer_code: str,
    bill_numbers: Sequence[str],
    transfer_ids: Sequence[Any] = (),
    payment_ids: Sequence[Any] = (),
    actor: Any,
    reason: str,
    key: str = "",
) -> Payment:
    """An agent applies money held for a customer (transfers kept for an agent, what payments
    owe back) to the customer's unpaid bills; returns the payment that paid them. Audited.

    The bills are paid the one way bills are paid: a payment recorded settled
    (`payment_record_settled`, by the channel the money came through) for exactly their total.
    What each credit gave is a `CreditUse`: a transfer all of whose money went to bills is
    `applied`, a payment owes back that much less. Credits, then bills, are locked (the lock
    order), so money is applied once and never beyond what it holds, and the bills must still
    be unpaid. `key` (the confirmation form's) makes a repeated request return the same payment.

    Raises CustomerNotFound, BillNotFound, BillAlreadyPaid, CreditNotHeld, NotEnoughCredit,
    ApprovalRequired (above CREDIT_APPROVAL_ABOVE_VND without the supervisors' permission).
    """
    if not reason.strip():
        raise PaymentError("Say why this money pays these bills.")
    if not bill_numbers:
        raise NothingToPay("Choose the bills to pay.")
    fingerprint = IdempotencyKey.fingerprint_of(
        {
            "customer": customer_code,
            "bills": sorted(bill_numbers),
            "transfers": sorted(map(str, transfer_ids)),
            "payments": sorted(map(str, payment_ids)),
        }
    )
    if key:
        done = _credit_applied(key, fingerprint)
        if done is not None:
            return done
    try:
        with transaction.atomic():
            claim = None
            if key:
                claim = IdempotencyKey.claim(
                    scope=CREDIT_IDEMPOTENCY_SCOPE, key=key, fingerprint=fingerprint
                )
            payment = _credit_apply(
                customer_code, bill_numbers, transfer_ids, payment_ids, actor, reason
            )
            if claim is not None:
                claim.payment, claim.response_status = payment, 200
                claim.save(update_fields=["payment", "response_status"])
    except IntegrityError:
        done = _credit_applied(key, fingerprint) if key else None
        if done is None:
            raise
        return done
    return payment


def _credit_applied(key: str, fingerprint: str) -> Payment | None:
    claim = (
        IdempotencyKey.objects.filter(scope=CREDIT_IDEMPOTENCY_SCOPE, key=key)
        .select_related("payment")
        .first()
    )
    if claim is None:
        return None
    if claim.fingerprint != fingerprint or claim.payment is None:
        raise InvalidTransition("This confirmation was already used for other money or bills.")
    return claim.payment


def _credit_apply(
    customer_code: str,
    bill_numbers: Sequence[str],
    transfer_ids: Sequence[Any],
    payment_ids: Sequence[Any],
    actor: Any,
    reason: str,
) -> Payment:
    customer = Customer.objects.filter(code=customer_code, is_active=True).first()
    if customer is None:
        raise CustomerNotFound("No customer has this code.")
    credits = _credits_held(customer, transfer_ids=transfer_ids, payment_ids=payment_ids, lock=True)
    wanted = {f"transfer:{pk}" for pk in transfer_ids} | {f"payment:{pk}" for pk in payment_ids}
    gone = wanted - {credit.key for credit in credits}
    if gone:
        raise CreditNotHeld(
            "This money is no longer held for this customer: " + ", ".join(sorted(gone)),
            credits=sorted(gone),
        )
    # Read without a lock to decide; payment_record_settled locks the bills and checks again.
    bills = _unpaid_bills_for(customer, bill_numbers, lock=False)
    total = sum(bill.amount for bill in bills)
    plan = credit_plan(credits=credits, total=total, actor=actor)
    if plan.needs_approval:
        raise ApprovalRequired(
            f"Applying more than {settings.CREDIT_APPROVAL_ABOVE_VND} VND needs a supervisor.",
            total=total,
        )
    # The bills are paid by the channel most of the money came through (the reports count a
    # bill by how the household paid it).
    largest = max(plan.uses, key=lambda use: use[1])[0]
    # What each credit gave, by its reference (a transfer's bank reference, a payment's).
    given = {credit.reference: used for credit, used in plan.uses}
    payment = payment_record_settled(
        customer_code=customer.code,
        method=largest.method,
        partner_code=largest.partner_code,
        bill_numbers=[bill.number for bill in bills],
        amount=total,
        report=Report(
            source=Source.AGENT, actor=actor, detail={"held_money": given, "reason": reason}
        ),
    )
    now = timezone.now()
    CreditUse.objects.bulk_create(
        [
            CreditUse(
                payment=payment,
                transfer_id=credit.pk if credit.kind == "transfer" else None,
                source_id=credit.pk if credit.kind == "payment" else None,
                amount=used,
                at=now,
            )
            for credit, used in plan.uses
        ]
    )
    _credits_give(plan, payment, actor=actor, now=now)
    _audit(
        actor=actor,
        action="credit_apply",
        payment=payment,
        reason=reason,
        detail={
            "amount": total,
            "bills": [bill.number for bill in bills],
            "held_money": given,
        },
    )
    return payment


def _credits_give(plan: CreditPlan, payment: Payment, *, actor: Any, now: datetime) -> None:
    """What each credit gave to `payment`, written on it: a transfer whose money is all used is
    `applied`; a payment owes back that much less (and no longer needs a refund at nothing)."""
    journal = Journal(now=now)
    for credit, used in plan.uses:
        if credit.kind == "transfer":
            transfer = BankTransfer.objects.get(pk=credit.pk)
            left = credit.amount - used
            note = notes.CREDIT_USED.say(used=used, reference=payment.reference)
            if left:
                note += " " + notes.CREDIT_LEFT.say(left=left)
            transfer.reason = f"{transfer.reason}\n{note}".strip()
            fields = ["reason"]
            if not left:
                transfer.status = BankTransfer.Status.APPLIED
                transfer.resolved_by, transfer.resolved_at = actor, now
                fields += ["status", "resolved_by", "resolved_at"]
            transfer.save(update_fields=fields)
            continue
        source = Payment.objects.get(pk=credit.pk)
        source.refund_amount -= used
        source.needs_refund = source.refund_amount > 0
        journal.changed(source)
        journal.event(
            source,
            report=Report(source=Source.AGENT, actor=actor),
            from_status=source.status,
            to_status=source.status,
            detail={"applied_to": payment.reference, "amount": used},
        )
    journal.write()


# --- Settling many payments at once -------------------------------------------------------------
# Receipts per task when many payments settle together: a 40,000-line statement publishes 160
# tasks, not 40,000, and a task sending its e-mails at 0.3 s each still ends within its limit.
RECEIPT_BATCH = 250


# The payment columns `payments_mark_succeeded` reads or writes: enough for `locked` payments.
SETTLING_FIELDS = ("id", "reference", "customer", "amount", "method", *Journal.PAYMENT_FIELDS)


def payments_lock(*conditions: Any, extra: Sequence[str] = ()) -> list[Payment]:
    """Lock the payments these conditions select, in id order (the lock order of every
    transition), read with the SETTLING_FIELDS (and `extra`): what a batch hands to
    `payments_mark_succeeded` as `locked`. Must run inside the transaction."""
    fields = (*SETTLING_FIELDS, *extra)
    rows = (
        Payment.objects.select_for_update().filter(*conditions).order_by("pk").values_list(*fields)
    )
    return instances(Payment, fields, rows)


@dataclass(frozen=True)
class Settlement:
    """One bank's word that a payment's money moved: the arguments of `payment_mark_succeeded`."""

    payment_id: Any
    report: Report
    amount: int | None = None
    provider_txn_id: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class Settled:
    """What one `Settlement` of `payments_mark_succeeded` did.

    `outcome` is None when the amount differs from the payment's (where `payment_mark_succeeded`
    raises AmountMismatch; nothing changed). `previous` is the payment's status when this
    settlement reached it, after the earlier ones of the batch; `payment` is the payment as the
    whole batch left it.
    """

    outcome: Outcome | None
    previous: str
    payment: Payment


def payments_mark_succeeded(
    *, settlements: Sequence[Settlement], locked: Mapping[Any, Payment] | None = None
) -> list[Settled]:
    """Banks proved the money of these payments moved: the one implementation of settling,
    `payment_mark_succeeded` being a batch of one, so a statement's thousands of settlements
    take a few queries in all and follow the very same rules.

    The settlements apply in the order given, with exactly the effects that settling them one
    after another would have: a payment named twice is settled by
    the first and "already done" for the second; a bill two payments cover goes to the first and
    leaves the second with `needs_refund`; a failed or cancelled payment is flagged, never
    applied; a wrong amount changes nothing. Every transition writes its `PaymentEvent`.

    Locks are taken in the order every transition uses (payments in id order, then the bills of
    those that may settle, in id order), so a notification for one of these payments arriving
    meanwhile waits for this batch, or this batch for it, and they never deadlock. `locked` are
    payments the caller already locked (`select_for_update`, in id order, with at least the
    SETTLING_FIELDS) in this transaction, e.g. to choose among them; they are used, and updated,
    in place instead of being read again. Receipts (see `receipts_enqueue`) and the
    forgetting of the customers' cached lookups follow the commit.

    Raises Payment.DoesNotExist, changing nothing, when a payment id names no payment.
    """
    if not settlements:
        return []
    with transaction.atomic():
        return _settle_many(settlements, locked or {})


def _settle_many(settlements: Sequence[Settlement], locked: Mapping[Any, Payment]) -> list[Settled]:
    as_pk = cast(Field, Payment._meta.pk).to_python
    wanted = [as_pk(settlement.payment_id) for settlement in settlements]
    payments = {pk: locked[pk] for pk in wanted if pk in locked}
    to_lock = sorted(set(wanted) - payments.keys())
    if to_lock:
        payments.update((payment.pk, payment) for payment in payments_lock(AnyOf(F("pk"), to_lock)))
    unknown = set(wanted) - payments.keys()
    if unknown:
        raise Payment.DoesNotExist(f"No payment has the id {min(map(str, unknown))}.")
    lines: dict[Any, list[tuple[int, int, int]]] = defaultdict(list)  # (line, bill, amount)
    may_settle = [pk for pk, payment in payments.items() if payment.status in SETTLEABLE]
    bills: dict[int, _BillState] = {}
    if may_settle:
        for line_id, payment_id, bill_id, amount in (
            PaymentBill.objects.filter(AnyOf(F("payment"), may_settle))
            .order_by("id")
            .values_list("id", "payment_id", "bill_id", "amount")
        ):
            lines[payment_id].append((line_id, bill_id, amount))
        bill_ids = sorted({bill_id for covered in lines.values() for _l, bill_id, _a in covered})
        bills = {
            bill_id: _BillState(number, status == Bill.Status.PAID)
            for bill_id, number, status in Bill.objects.select_for_update()
            .filter(AnyOf(F("id"), bill_ids))
            .order_by("id")
            .values_list("id", "number", "status")
        }
    batch = _Settling(bills)
    results: list[Settled] = []
    for settlement, pk in zip(settlements, wanted, strict=True):
        payment = payments[pk]
        previous = payment.status
        outcome: Outcome | None
        step = states.step(previous, Event.SUCCEED)
        txn = settlement.provider_txn_id
        if settlement.amount is not None and settlement.amount != payment.amount:
            outcome = None
        elif step.verdict is Verdict.ALREADY:
            if txn and payment.provider_txn_id and txn != payment.provider_txn_id:
                outcome = batch.journal.flag(
                    payment,
                    report=settlement.report,
                    reason=notes.SECOND_TRANSACTION.say(txn=txn),
                    detail={"provider_txn_id": txn},
                )
            else:
                outcome = Outcome.ALREADY_DONE
        elif step.verdict is Verdict.FLAG:
            outcome = batch.journal.flag(
                payment,
                report=settlement.report,
                reason=notes.SUCCESS_FOR.say(previous=previous),
                detail={"provider_txn_id": txn, "amount": settlement.amount},
            )
        elif step.verdict is Verdict.MOVE:
            outcome = batch.succeed(payment, settlement, lines[pk])
        else:
            raise _refuse(payment, Event.SUCCEED)
        results.append(Settled(outcome, previous, payment))
    batch.write()
    return results


@dataclass
class _BillState:
    number: str
    paid: bool


class _Settling:
    """What settling a batch changes beyond the journal: bills paid, lines applied."""

    def __init__(self, bills: dict[int, _BillState]) -> None:
        self.journal = Journal()
        self.bills = bills
        self.paid_bills: list[tuple[Any, ...]] = []  # (bill, status, paid_at, paid_by)
        self.applied_lines: list[int] = []
        self.settled: dict[Any, Payment] = {}

    def succeed(
        self, payment: Payment, settlement: Settlement, lines: list[tuple[int, int, int]]
    ) -> Outcome:
        paid_at = settlement.at or self.journal.now
        refund = 0
        already_paid: list[str] = []
        for line_id, bill_id, amount in lines:
            bill = self.bills[bill_id]
            if bill.paid:
                refund += amount
                already_paid.append(bill.number)
                continue
            bill.paid = True
            self.paid_bills.append((bill_id, Bill.Status.PAID, paid_at, payment.pk))
            self.applied_lines.append(line_id)
        payment.succeeded_at = paid_at
        txn = settlement.provider_txn_id
        if txn and not payment.provider_txn_id:
            payment.provider_txn_id = txn
        if refund:
            payment.needs_refund = True
            payment.refund_amount = refund
        detail: dict[str, Any] = {"provider_txn_id": txn} if txn else {}
        if refund:
            detail.update({"needs_refund": refund, "bills_already_paid": already_paid})
        self.journal.move(payment, Status.SUCCEEDED, report=settlement.report, detail=detail)
        self.settled[payment.pk] = payment
        return Outcome.NEEDS_REFUND if refund else Outcome.APPLIED

    def write(self) -> None:
        bulk_update_rows(Bill, ("status", "paid_at", "paid_by"), self.paid_bills)
        if self.applied_lines:
            PaymentBill.objects.filter(AnyOf(F("id"), self.applied_lines)).update(applied=True)
        self.journal.write()
        if not self.settled:
            return
        # Side effects only once the transaction is committed.
        payment_ids = [str(pk) for pk in self.settled]
        customer_ids = sorted({payment.customer_id for payment in self.settled.values()})
        codes = list(
            Customer.objects.filter(AnyOf(F("id"), customer_ids))
            .order_by()
            .values_list("code", flat=True)
        )
        transaction.on_commit(lambda: receipts_enqueue(payment_ids=payment_ids))
        transaction.on_commit(lambda: bills_cache_forget(customer_codes=codes))


def receipts_enqueue(*, payment_ids: Sequence[str]) -> None:
    """Hand receipts to the workers: one payment's in its own retrying task, many payments'
    RECEIPT_BATCH per task."""
    if len(payment_ids) == 1:
        send_now("payments.tasks.send_receipt", payment_ids[0])
        return
    for start in range(0, len(payment_ids), RECEIPT_BATCH):
        send_now("payments.tasks.send_receipts", list(payment_ids[start : start + RECEIPT_BATCH]))
