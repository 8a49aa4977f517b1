"""Applying what partners report about redirect payments (notifications and status answers),
whatever their protocol: the payment-page channels' part of the applier.

A channel reads each stored message into a `Report` (or decides it at once: an `Applied`);
`apply_reports` then locks the payments named, in id order, settles the successes for the right
amount together through `services.payments_mark_succeeded` (the one settle function), fails a
definite "no", and flags for an agent anything else that claims money moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Q

from payments import services
from payments.bulk import AnyOf
from payments.channels.common.results import Result
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment
from payments.notes import Note

Outcome = InboundMessage.Outcome


@dataclass(frozen=True)
class Report:
    """A verified report about one of our payments, read from a stored message."""

    reference: str
    amount: int | None  # whole VND as reported; None when unreadable
    result: Result | None  # None: the partner had nothing to say about it (yet)
    report: services.Report
    transaction_no: str
    paid_at: datetime | None
    reason: str  # the partner's words, kept with the outcome and the event
    settled: str  # the outcome's detail when it settles the payment
    teller: str  # who said it, for an agent's note (notes.THE_BANK, ...)
    amount_note: Note  # the note for an amount that is not the payment's
    reported_amount: str  # the amount as the partner wrote it, for that note
    check_note: Note  # the note for anything else that claims money moved


Reader = Callable[[Claimed, Partner | None], Report | Applied]


@dataclass(frozen=True)
class Answer:
    """A partner's answer to a status query, for the poller to store and apply. `genuine` is
    None for a protocol that signs no answer: it is the answer of the partner's HTTPS API."""

    body: dict[str, Any]
    request_id: str
    genuine: bool | None
    signature: str = ""


def apply_reports(messages: Sequence[Claimed], read: Reader) -> dict[int, Applied]:
    """Apply stored notifications and status answers (claimed, locked), in message order;
    returns what each came to.

    The checks are made again here, under the payments' row locks, because a payment may have
    changed since its notification was answered. The payments named are locked in id order
    first; the successes are settled together (`services.payments_mark_succeeded`), and a
    failure or a report to flag waits for the successes before it.
    """
    partners = {partner.pk: partner for partner in Partner.objects.filter(offers_redirect=True)}
    read_: dict[int, Report | Applied] = {
        message.pk: read(message, partners.get(message.partner_id or 0)) for message in messages
    }
    wanted = {
        (message.partner_id, report.reference)
        for message in messages
        if isinstance(report := read_[message.pk], Report)
    }
    locked = (
        {
            (payment.partner_id, payment.reference): payment
            for payment in services.payments_lock(
                AnyOf(F("reference"), sorted({reference for _partner, reference in wanted})),
                Q(method=Payment.Method.REDIRECT),
                extra=("partner",),
            )
        }
        if wanted
        else {}
    )
    results: dict[int, Applied] = {}
    settling: list[tuple[int, Payment, Report]] = []

    def settle() -> None:
        settled = services.payments_mark_succeeded(
            settlements=[
                services.Settlement(
                    payment_id=payment.pk,
                    report=report.report,
                    amount=payment.amount,
                    provider_txn_id=report.transaction_no,
                    at=report.paid_at,
                )
                for _message, payment, report in settling
            ],
            locked={payment.pk: payment for _message, payment, _report in settling},
        )
        for (message_id, payment, report), result in zip(settling, settled, strict=True):
            outcome = Outcome(f"succeeded:{result.outcome}")
            results[message_id] = Applied(outcome, report.settled, payment.pk)
        settling.clear()

    for message in messages:
        report = read_[message.pk]
        if isinstance(report, Applied):
            results[message.pk] = report
            continue
        payment = locked.get((message.partner_id, report.reference))
        if payment is None or (message.payment_id and message.payment_id != payment.pk):
            if payment is None and not message.payment_id:
                results[message.pk] = Applied(Outcome.ORDER_NOT_FOUND, report.reference)
            else:
                results[message.pk] = Applied(
                    Outcome.WRONG_PAYMENT, "the answer is about another payment"
                )
            continue
        if report.result is None:
            results[message.pk] = Applied(Outcome.NOTHING_YET, report.reason, payment.pk)
            continue
        if report.result is Result.PENDING:
            results[message.pk] = Applied(Outcome.PENDING, report.reason, payment.pk)
            continue
        if report.result is Result.SUCCESS and report.amount == payment.amount:
            settling.append((message.pk, payment, report))
            continue
        if settling:
            settle()  # what came before this report, first
        results[message.pk] = Applied(_apply_other(payment, report), report.reason, payment.pk)
        # The service wrote the row: what the next report of this batch sees is read again.
        payment.refresh_from_db(fields=[f for f in services.SETTLING_FIELDS if f != "id"])
    if settling:
        settle()
    return results


def _apply_other(payment: Payment, report: Report) -> Outcome:
    """A verified report that is not a success for the right amount: flag it or fail it."""
    if report.amount != payment.amount:
        if report.result is not Result.FAILED:
            services.payment_flag_review(
                payment_id=payment.pk,
                report=report.report,
                reason=report.amount_note.say(
                    teller=report.teller,
                    reported=report.reported_amount,
                    payment_amount=payment.amount,
                ),
            )
        return Outcome.AMOUNT_MISMATCH
    if report.result is Result.FAILED:
        outcome = services.payment_mark_failed(
            payment_id=payment.pk, report=report.report, reason=report.reason
        )
        return Outcome(f"failed:{outcome}")
    services.payment_flag_review(
        payment_id=payment.pk,
        report=report.report,
        reason=report.check_note.say(reason=report.reason),
    )
    return Outcome.REVIEW_FLAGGED
