"""What the collection API does with an authenticated request, and how it answers it only once.

Every request is kept in the inbox with the answer it got, under one of two keys:
- `collection:<kind>:<PARTNER>:txn:<transaction_id>`: the first payment notice of a transaction
  id. Claimed *before* the payment is recorded, inside the same transaction, so a second notice
  racing the first waits on the unique index and then reads the first one's answer;
- `collection:<kind>:<PARTNER>:sig:<signature>`: everything else (inquiries, reversals, repeats
  and refusals). A signature covers the timestamp, method, path and body, so the same key again
  is a replay of the very same request: it gets the stored answer, marked
  `Idempotent-Replayed: true`, and has no second effect. Once its timestamp is more than 300 s
  old a replay is refused with 401 before it gets here.

The rules themselves (which bills, what amount, what may be reversed) live in
`payments.services`; this module only turns requests into service calls and answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers, status

from common.api import error_body
from common.error_messages import error_message
from common.localtime import GMT7
from customers.models import Bill, Customer
from payments import services
from payments.channels.collection import signing
from payments.channels.collection.auth import PartnerCaller
from payments.channels.collection.business_day import (
    business_date,
    previous_business_day_start,
)
from payments.channels.collection.serializers import InquiryInput, PaymentNoticeInput, ReversalInput
from payments.inbox import Applied, inbox_finish, inbox_store
from payments.models import InboundMessage, Payment

logger = logging.getLogger(__name__)

Kind = InboundMessage.Kind


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Result:
    """An answer and what to write on the inbox row about it."""

    answer: Answer
    outcome: str
    detail: str = ""
    payment: Payment | None = field(default=None)


def _error(
    code: str, message: str, http_status: int, fields: dict[str, Any] | None = None
) -> Result:
    return Result(Answer(http_status, error_body(code, message, fields)), code, message)


# --- Keys, replays, storing ---------------------------------------------------------------------
def _signature_key(kind: str, caller: PartnerCaller) -> str:
    return f"collection:{kind}:{caller.partner.code}:sig:{caller.signature}"


def _transaction_key(kind: str, partner_code: str, transaction_id: str) -> str:
    return f"collection:{kind}:{partner_code}:txn:{transaction_id}"


def _stored_answer(message: InboundMessage) -> Answer | None:
    if message.response_status is None or not isinstance(message.response_body, dict):
        return None
    return Answer(message.response_status, message.response_body, replayed=True)


def _transaction_seen(kind: str, caller: PartnerCaller, transaction_id: str) -> bool:
    key = _transaction_key(kind, caller.partner.code, transaction_id)
    return InboundMessage.objects.filter(dedupe_key=key).exists()


def _replay_of(key: str) -> Answer | None:
    message = InboundMessage.objects.filter(dedupe_key=key).first()
    return _stored_answer(message) if message is not None else None


def _answer_once(
    *,
    caller: PartnerCaller,
    headers: dict[str, str],
    kind: str,
    key: str,
    work: Callable[[InboundMessage], Result],
) -> Answer:
    """Store the request under `key`, do the work, and keep the answer, all in one transaction.

    A concurrent request with the same key waits on the unique index until this one commits,
    then answers with what this one answered.
    """
    with transaction.atomic():
        message, created = inbox_store(
            kind=kind,
            dedupe_key=key,
            body=caller.body_text,
            partner=caller.partner,
            headers=headers,
            signature_valid=True,
        )
        if not created:
            first = _stored_answer(message)
            if first is not None:
                return first
            # Unreachable while every row is stored with its answer; refuse rather than guess.
            result = _error(
                "request_in_progress",
                _("This request is already being handled; ask again in a moment."),
                status.HTTP_409_CONFLICT,
            )
            return result.answer
        result = work(message)
        _finish(message, result)
    return result.answer


def _finish(message: InboundMessage, result: Result) -> None:
    """Mark the row processed and keep the answer, in one UPDATE (every partner request)."""
    inbox_finish(
        message_id=message.pk,
        applied=Applied(
            InboundMessage.Outcome(result.outcome),
            result.detail,
            result.payment.pk if result.payment is not None else None,
        ),
        response=(result.answer.status, result.answer.body),
    )


def _refusal(caller: PartnerCaller, headers: dict[str, str], kind: str, result: Result) -> Answer:
    return _answer_once(
        caller=caller,
        headers=headers,
        kind=kind,
        key=_signature_key(kind, caller),
        work=lambda _message: result,
    )


# --- Reading the body ---------------------------------------------------------------------------
def _messages(errors: Any) -> list[str]:
    if isinstance(errors, dict):
        return [f"{key}: {text}" for key, value in errors.items() for text in _messages(value)]
    if isinstance(errors, list):
        return [text for item in errors for text in _messages(item)]
    return [str(errors)]


def _parse(caller: PartnerCaller, serializer_class: type[serializers.Serializer]) -> Any:
    """The validated body, or the Result refusing it (400)."""
    try:
        data = json.loads(caller.body or b"null")
    except (ValueError, RecursionError):
        return _error(
            "malformed_request",
            _("The request body is not valid JSON."),
            status.HTTP_400_BAD_REQUEST,
        )
    if not isinstance(data, dict):
        return _error(
            "invalid_request", _("The body must be a JSON object."), status.HTTP_400_BAD_REQUEST
        )
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    code_errors = errors.get("customer_code") or []
    if code_errors and getattr(code_errors[0], "code", "") == "invalid_customer_code":
        return _error(
            "invalid_customer_code",
            error_message("invalid_customer_code"),
            status.HTTP_400_BAD_REQUEST,
            {"customer_code": [str(code_errors[0])]},
        )
    unknown = [
        name
        for name, items in errors.items()
        if any(getattr(item, "code", "") == "unknown_field" for item in items)
    ]
    message = (
        _("The body has fields this request does not take: %(fields)s.")
        % {"fields": ", ".join(unknown)}
        if unknown
        else _("Some fields are missing or invalid.")
    )
    return _error(
        "invalid_request",
        message,
        status.HTTP_400_BAD_REQUEST,
        {name: _messages(items) for name, items in errors.items()},
    )


def _domain_error(exc: services.PaymentError) -> Result:
    """A service's refusal as the contract's error (codes from docs/interfaces.md)."""
    if isinstance(exc, services.BillNotFound | services.BillAlreadyPaid):
        numbers = exc.context.get("bill_numbers", exc.context.get("bills", []))
        return _error(
            exc.code,
            error_message(exc.code, **exc.context),
            exc.http_status,
            {"bill_numbers": [str(n) for n in numbers]},
        )
    if isinstance(exc, services.AmountMismatch):
        message = error_message(
            exc.code, expected=exc.context.get("expected"), received=exc.context.get("received")
        )
        return _error(exc.code, message, exc.http_status, {"amount": [message]})
    if isinstance(
        exc, services.CustomerNotFound | services.InvalidPartner | services.InvalidTransition
    ):
        return _error(exc.code, error_message(exc.code, **exc.context), exc.http_status)
    # The only other refusal of payment_record_settled: the transaction id already names one of
    # this partner's payments through another channel (e.g. its redirect gateway).
    return _error(
        "transaction_id_reused",
        error_message("transaction_id_reused"),
        status.HTTP_409_CONFLICT,
    )


# --- Inquiry ------------------------------------------------------------------------------------
def collection_inquiry(*, caller: PartnerCaller, headers: dict[str, str]) -> Answer:
    """What a customer owes: unpaid bills, oldest first, with the customer's full name.

    The full name is given to partners (not masked as on public pages): the partner is
    authenticated and bound by contract, and the payer must see whom they are paying.
    """
    key = _signature_key(Kind.INQUIRY, caller)

    def work(_message: InboundMessage) -> Result:
        data = _parse(caller, InquiryInput)
        if isinstance(data, Result):
            return data
        customer = (
            Customer.objects.only("id", "code", "name")
            .filter(code=data["customer_code"], is_active=True)
            .first()
        )
        if customer is None:
            return _error(
                "customer_not_found", error_message("customer_not_found"), status.HTTP_404_NOT_FOUND
            )
        bills = list(
            Bill.objects.filter(customer=customer, status=Bill.Status.UNPAID)
            .only("number", "period", "amount", "due_date")
            .order_by("period")
        )
        body = {
            "customer_code": customer.code,
            "customer_name": customer.name,
            "bills": [
                {
                    "number": bill.number,
                    "period": f"{bill.period:%Y-%m}",
                    "amount": bill.amount,
                    "due_date": bill.due_date.isoformat(),
                }
                for bill in bills
            ],
            "total_due": sum(bill.amount for bill in bills),
        }
        return Result(Answer(status.HTTP_200_OK, body), "answered", f"{len(bills)} unpaid bill(s)")

    return _answer_once(caller=caller, headers=headers, kind=Kind.INQUIRY, key=key, work=work)


# --- Payment notice -----------------------------------------------------------------------------
def _notice_fingerprint(data: dict[str, Any]) -> str:
    """What makes two notices "the same body": equal values, whatever the JSON spelling,
    key order, bill order or time-zone notation."""
    canonical = {
        "transaction_id": data["transaction_id"],
        "customer_code": data["customer_code"],
        "bill_numbers": sorted(data["bill_numbers"]),
        "amount": data["amount"],
        "paid_at": data["paid_at"].astimezone(GMT7).isoformat(),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_fingerprint(message: InboundMessage) -> str | None:
    try:
        data = json.loads(message.body)
    except ValueError:
        return None
    serializer = PaymentNoticeInput(data=data) if isinstance(data, dict) else None
    if serializer is None or not serializer.is_valid():
        return None
    return _notice_fingerprint(dict(serializer.validated_data))


def _accepted(payment: Payment) -> dict[str, Any]:
    return {
        "status": "accepted",
        "payment_id": str(payment.id),
        "receipt_number": payment.receipt_number,
    }


def _paid_at_refusal(paid_at: datetime, now: datetime) -> str | None:
    """Why a notice's `paid_at` cannot be taken, or None.

    Not in the future beyond the clocks' tolerance. Not before the previous business day: a
    payment taken just before midnight may be notified after it (retries, an outage), but an older
    date would put it on a day already settled and reconciled, and out of the reversal window
    from the start.
    """
    if paid_at > now + timedelta(seconds=signing.TOLERANCE_SECONDS):
        return _("paid_at is in the future.")
    earliest = previous_business_day_start(now)
    if paid_at < earliest:
        return _(
            "paid_at may not be earlier than %(earliest)s, the start of the previous business "
            "day (GMT+7)."
        ) % {"earliest": earliest.isoformat()}
    return None


def collection_payment_notice(*, caller: PartnerCaller, headers: dict[str, str]) -> Answer:
    """A partner took money for named bills: record the payment once per transaction id.

    The first notice of a transaction id decides its answer for good: the same notice again gets
    that answer (a success as 200 instead of 201), a different notice with the same id 409
    `transaction_id_reused`. Refusals (unknown bill, already paid, wrong amount) are final too:
    the partner sends a new transaction id for a new attempt.
    """
    kind = Kind.COLLECTION
    # Checked first: a replay must get the first answer even if re-reading the same body would
    # now be judged differently (a `paid_at` no longer in the future, say).
    replay = _replay_of(_signature_key(kind, caller))
    if replay is not None:
        return replay
    data = _parse(caller, PaymentNoticeInput)
    if isinstance(data, Result):
        return _refusal(caller, headers, kind, data)
    message = _paid_at_refusal(data["paid_at"], timezone.now())
    if message is not None and not _transaction_seen(kind, caller, data["transaction_id"]):
        # Refused without claiming the transaction id; a retry of a notice already answered
        # (re-signed days later) still gets its first answer below.
        return _refusal(
            caller,
            headers,
            kind,
            _error(
                "invalid_request",
                _("Some fields are missing or invalid."),
                status.HTTP_400_BAD_REQUEST,
                {"paid_at": [message]},
            ),
        )

    partner = caller.partner
    transaction_id = data["transaction_id"]

    def settle(message: InboundMessage) -> Result:
        report = services.Report(
            source=services.Source.COLLECTION,
            message=message,
            detail={"partner": partner.code, "transaction_id": transaction_id},
        )
        try:
            payment = services.payment_record_settled(
                customer_code=data["customer_code"],
                method=Payment.Method.COLLECTION,
                partner_code=partner.code,
                bill_numbers=data["bill_numbers"],
                report=report,
                provider_txn_id=transaction_id,
                amount=data["amount"],
                paid_at=data["paid_at"],
            )
        except services.PaymentError as exc:
            logger.info("collection notice %s/%s refused: %s", partner.code, transaction_id, exc)
            return _domain_error(exc)
        return Result(
            Answer(status.HTTP_201_CREATED, _accepted(payment)),
            "accepted",
            f"payment {payment.reference}",
            payment,
        )

    with transaction.atomic():
        claim, created = inbox_store(
            kind=kind,
            dedupe_key=_transaction_key(kind, partner.code, transaction_id),
            body=caller.body_text,
            partner=partner,
            headers=headers,
            signature_valid=True,
        )
        if created:
            result = settle(claim)
            _finish(claim, result)
            return result.answer

    # This transaction id was used before (or by a notice that raced us and committed first).
    repeat = _repeat_answer(claim, fingerprint=_notice_fingerprint(data))
    return _answer_once(
        caller=caller,
        headers=headers,
        kind=kind,
        key=_signature_key(kind, caller),
        work=lambda _message: repeat,
    )


def _repeat_answer(claim: InboundMessage, *, fingerprint: str) -> Result:
    if _stored_fingerprint(claim) != fingerprint:
        return _error(
            "transaction_id_reused",
            error_message("transaction_id_reused"),
            status.HTTP_409_CONFLICT,
        )
    first = _stored_answer(claim)
    if first is None:
        return _error(
            "request_in_progress",
            _("This request is already being handled; ask again in a moment."),
            status.HTTP_409_CONFLICT,
        )
    # A success is answered 200 the second time (docs/interfaces.md); a refusal stays what it was.
    again = status.HTTP_200_OK if first.status == status.HTTP_201_CREATED else first.status
    return Result(
        Answer(again, first.body, replayed=True),
        "repeat",
        f"same notice as inbox message {claim.pk}",
        claim.payment,
    )


# --- Reversal -----------------------------------------------------------------------------------
def collection_reversal(
    *, caller: PartnerCaller, headers: dict[str, str], today: date | None = None
) -> Answer:
    """The partner takes back a payment of today (GMT+7): its bills are unpaid again.

    Reversing a reversed payment answers "reversed" again, even after the window closed.
    """
    kind = Kind.REVERSAL
    key = _signature_key(kind, caller)
    data = _parse(caller, ReversalInput)
    if isinstance(data, Result):
        return _refusal(caller, headers, kind, data)
    today = today or timezone.now().astimezone(GMT7).date()

    def reverse(message: InboundMessage) -> Result:
        payment = (
            Payment.objects.filter(
                partner=caller.partner,
                method=Payment.Method.COLLECTION,
                provider_txn_id=data["transaction_id"],
            )
            .only("id", "status", "succeeded_at")
            .first()
        )
        if payment is None:
            return _error(
                "transaction_not_found",
                _("No payment of yours has this transaction id."),
                status.HTTP_404_NOT_FOUND,
            )
        reversed_body = {"status": "reversed"}
        if payment.status == Payment.Status.REVERSED:
            return Result(Answer(status.HTTP_200_OK, reversed_body), "already_done", "", payment)
        if payment.succeeded_at is not None and business_date(payment.succeeded_at) < today:
            return _error(
                "reversal_window_closed",
                _("A payment can only be reversed on its business day (GMT+7)."),
                status.HTTP_409_CONFLICT,
            )
        try:
            outcome = services.payment_reverse(
                payment_id=payment.pk,
                report=services.Report(
                    source=services.Source.COLLECTION,
                    message=message,
                    detail={"partner": caller.partner.code},
                ),
                reason=data["reason"],
            )
        except services.PaymentError as exc:
            return _domain_error(exc)
        return Result(Answer(status.HTTP_200_OK, reversed_body), str(outcome), "", payment)

    return _answer_once(caller=caller, headers=headers, kind=kind, key=key, work=reverse)
