"""The money-integrity check: do the books add up?

Each rule is one set-based query that lists the rows breaking it (none, when all is well):
- a succeeded (or refunded) payment's amount equals the bills it paid plus what it owes back;
- no bill is paid twice, and a paid bill's `paid_by` is the one payment whose line applied it;
- every paid bill was paid by a succeeded payment, and every applied line belongs to one;
- a succeeded payment has a `succeeded` event in its history, and only one: money applied twice
  would show as a second transition to `succeeded`;
- a matched bank transfer settled a succeeded payment, and the transfers matched to a payment
  bring exactly its amount (one, or short ones made whole together; money received twice is
  `needs_refund`, never matched);
- held money an agent applied to bills (`CreditUse`) adds up: a payment paid with it got exactly
  its amount, a transfer never gave more than it held (all of it, once `applied`), and what a
  payment gave counts with what its bills took and what it owes back;
- money owed back (`refund_amount`) is either waiting for an agent (`needs_refund`), refunded,
  or went back with a reversal;
- every inbound message is processed, or still young enough to be in flight, and every processed
  one says what became of it (its outcome); every bank transfer was decided.
Inbound messages are also summarised per partner, kind and day with their outcomes, so a gap
shows where it is and every message is explained.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from customers.models import Bill
from payments import states
from payments.models import (
    BankTransfer,
    CreditUse,
    InboundMessage,
    Payment,
    PaymentBill,
    PaymentEvent,
)

# Settled on our side: the money moved and the partner kept it (a refund still moved money).
SETTLED = states.COLLECTED
SAMPLE = 20  # rows listed per breach; the count is always complete


@dataclass
class Breach:
    rule: str
    count: int
    examples: list[Any]


@dataclass
class IntegrityReport:
    checked_at: datetime.datetime
    totals: dict[str, int] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: what `check_integrity --json` prints."""
        return {
            "checked_at": self.checked_at.isoformat(),
            "ok": self.ok,
            "totals": dict(self.totals),
            "breaches": [
                {**asdict(breach), "examples": [_plain(e) for e in breach.examples]}
                for breach in self.breaches
            ],
            "inbox": [{**row, "day": str(row["day"])} for row in self.inbox],
        }

    def as_text(self) -> str:
        lines = [f"Integrity check at {self.checked_at:%Y-%m-%d %H:%M:%S %Z}"]
        lines += [f"  {name}: {value}" for name, value in self.totals.items()]
        lines.append(
            "Inbound messages (partner, kind, day: received / processed / in flight; outcomes):"
        )
        for row in self.inbox:
            outcomes = ", ".join(f"{name} {count}" for name, count in row["outcomes"].items())
            lines.append(
                f"  {row['partner'] or '-'} {row['kind']} {row['day']}: {row['received']} / "
                f"{row['processed']} / {row['in_flight']}; {outcomes or 'none yet'}"
            )
        if self.ok:
            lines.append("OK: no breach.")
        for breach in self.breaches:
            lines.append(f"BREACH {breach.rule}: {breach.count} row(s), e.g. {breach.examples}")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _breach(report: IntegrityReport, rule: str, queryset: Any) -> None:
    count = queryset.count()
    if count:
        report.breaches.append(Breach(rule, count, list(queryset[:SAMPLE])))


def integrity_check(
    *, in_flight_for: datetime.timedelta = datetime.timedelta(minutes=5)
) -> IntegrityReport:
    """Run every rule; `in_flight_for` is how long an unprocessed message may still be in flight."""
    now = timezone.now()
    report = IntegrityReport(checked_at=timezone.localtime(now))
    applied_sum = (
        PaymentBill.objects.filter(payment=OuterRef("pk"), applied=True)
        .values("payment")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    settled = Payment.objects.filter(status__in=SETTLED)
    report.totals = {
        "settled payments": settled.count(),
        "paid bills": Bill.objects.filter(status=Bill.Status.PAID).count(),
        "payments waiting for a refund": Payment.objects.filter(needs_refund=True).count(),
        "transfers waiting for an agent": BankTransfer.objects.filter(
            status__in=["received", "unmatched", "wrong_amount", "needs_refund"]
        ).count(),
        "inbound messages": InboundMessage.objects.count(),
    }
    given_sum = (
        CreditUse.objects.filter(source=OuterRef("pk"))
        .values("source")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    _breach(
        report,
        "payment amount != bills it paid + amount to refund + money it gave to other bills",
        settled.annotate(
            paid=Coalesce(Subquery(applied_sum), Value(0)),
            gave=Coalesce(Subquery(given_sum), Value(0)),
        )
        .exclude(amount=F("paid") + F("refund_amount") + F("gave"))
        .values_list("reference", "amount", "paid", "refund_amount", "gave"),
    )
    _breach(
        report,
        "bill applied by more than one payment",
        PaymentBill.objects.filter(applied=True)
        .values("bill__number")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("bill__number", "n"),
    )
    applying_line = PaymentBill.objects.filter(
        bill=OuterRef("pk"), payment=OuterRef("paid_by"), applied=True
    )
    _breach(
        report,
        "paid bill without the applied line of its payment",
        Bill.objects.filter(status=Bill.Status.PAID)
        .exclude(Exists(applying_line))
        .values_list("number", flat=True),
    )
    _breach(
        report,
        "paid bill whose payment is not succeeded",
        Bill.objects.filter(status=Bill.Status.PAID)
        .exclude(paid_by__status=Payment.Status.SUCCEEDED)
        .values_list("number", "paid_by__reference", "paid_by__status"),
    )
    _breach(
        report,
        "applied line whose bill is not paid by that payment",
        PaymentBill.objects.filter(applied=True)
        .filter(Q(bill__status=Bill.Status.UNPAID) | ~Q(bill__paid_by=F("payment")))
        .values_list("payment__reference", "bill__number"),
    )
    _breach(
        report,
        "applied line of a payment that is not succeeded",
        PaymentBill.objects.filter(applied=True)
        .exclude(payment__status=Payment.Status.SUCCEEDED)
        .values_list("payment__reference", "payment__status"),
    )
    succeeded_event = PaymentEvent.objects.filter(
        payment=OuterRef("pk"), to_status=Payment.Status.SUCCEEDED
    )
    _breach(
        report,
        "succeeded payment without a succeeded event",
        Payment.objects.filter(status=Payment.Status.SUCCEEDED)
        .exclude(Exists(succeeded_event))
        .values_list("reference", flat=True),
    )
    # A flag on a settled payment is recorded as succeeded -> succeeded; only a real transition
    # from another state counts, and a payment makes it once.
    _breach(
        report,
        "payment succeeded more than once",
        PaymentEvent.objects.filter(to_status=Payment.Status.SUCCEEDED)
        .exclude(from_status=Payment.Status.SUCCEEDED)
        .values("payment__reference")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("payment__reference", "n"),
    )
    _breach(
        report,
        "refund owed that nobody is asked to give back",
        Payment.objects.filter(refund_amount__gt=0, needs_refund=False, refunded_at__isnull=True)
        .exclude(status=Payment.Status.REVERSED)
        .values_list("reference", "refund_amount"),
    )
    _breach(
        report,
        "matched transfer without a settled payment",
        BankTransfer.objects.filter(status=BankTransfer.Status.MATCHED)
        .filter(Q(payment__isnull=True) | ~Q(payment__status__in=SETTLED))
        .values_list("external_id", "amount", "payment__reference"),
    )
    # Money that arrived short is matched together with the credit that made it whole; money
    # received twice would make more than the payment's amount.
    _breach(
        report,
        "transfers matched to a payment that do not bring its amount",
        BankTransfer.objects.filter(status=BankTransfer.Status.MATCHED, payment__isnull=False)
        .values("payment__reference", "payment__amount")
        .annotate(brought=Sum("amount"), n=Count("id"))
        .exclude(brought=F("payment__amount"))
        .values_list("payment__reference", "payment__amount", "brought", "n"),
    )
    _breach(
        report,
        "payment paid with held money for another amount",
        CreditUse.objects.values("payment__reference", "payment__amount")
        .annotate(brought=Sum("amount"))
        .exclude(brought=F("payment__amount"))
        .values_list("payment__reference", "payment__amount", "brought"),
    )
    _breach(
        report,
        "transfer that gave more than it held, or applied without giving all of it",
        CreditUse.objects.filter(transfer__isnull=False)
        .values("transfer__external_id", "transfer__amount", "transfer__status")
        .annotate(gave=Sum("amount"))
        .filter(
            Q(gave__gt=F("transfer__amount"))
            | Q(transfer__status=BankTransfer.Status.APPLIED) & ~Q(gave=F("transfer__amount"))
        )
        .values_list("transfer__external_id", "transfer__amount", "gave"),
    )
    _breach(
        report,
        "applied transfer that paid no bill",
        BankTransfer.objects.filter(status=BankTransfer.Status.APPLIED)
        .exclude(Exists(CreditUse.objects.filter(transfer=OuterRef("pk"))))
        .values_list("external_id", "amount"),
    )
    _breach(
        report,
        "bank transfer never decided",
        BankTransfer.objects.filter(
            status=BankTransfer.Status.RECEIVED, received_at__lt=now - in_flight_for
        ).values_list("external_id", "amount"),
    )
    _breach(
        report,
        "inbound message not processed",
        InboundMessage.objects.filter(
            processed_at__isnull=True, received_at__lt=now - in_flight_for
        ).values_list("kind", "dedupe_key", "attempts", "outcome_detail"),
    )
    _breach(
        report,
        "processed inbound message without an outcome",
        InboundMessage.objects.filter(processed_at__isnull=False, outcome="").values_list(
            "kind", "dedupe_key"
        ),
    )
    report.inbox = [
        dict(row)
        for row in InboundMessage.objects.annotate(day=TruncDate("received_at"))
        .values("partner__code", "kind", "day")
        .annotate(
            received=Count("id"),
            processed=Count("id", filter=Q(processed_at__isnull=False)),
            in_flight=Count("id", filter=Q(processed_at__isnull=True)),
        )
        .order_by("day", "partner__code", "kind")
        .values("partner__code", "kind", "day", "received", "processed", "in_flight")
    ]
    outcomes = _outcomes_by_row()
    for row in report.inbox:
        row["partner"] = row.pop("partner__code")
        row["outcomes"] = outcomes.get((row["partner"], row["kind"], row["day"]), {})
    return report


def _outcomes_by_row() -> dict[tuple[Any, str, Any], dict[str, int]]:
    """(partner, kind, day) -> {outcome: count} of processed messages, most frequent first."""
    grouped: dict[tuple[Any, str, Any], Counter[str]] = {}
    rows = (
        InboundMessage.objects.filter(processed_at__isnull=False)
        .annotate(day=TruncDate("received_at"))
        .values("partner__code", "kind", "day", "outcome")
        .annotate(n=Count("id"))
        .values_list("partner__code", "kind", "day", "outcome", "n")
    )
    for partner, kind, day, outcome, n in rows:
        grouped.setdefault((partner, kind, day), Counter())[outcome or "(none)"] += n
    return {key: dict(counter.most_common()) for key, counter in grouped.items()}
