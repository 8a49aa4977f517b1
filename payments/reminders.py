"""Reminders with a pay-now link: queued for a new period, a few days before the due date and
once after it, and sent in batches by the workers (`payments.tasks`).

The rules, each kept by the database or checked at the last moment:

- a bill is reminded of once per kind and channel (`ReminderLine`'s unique constraint), so a
  task run twice queues nothing new;
- a customer gets at most one message per channel and day (`ReminderMessage`'s): bills queued
  the same day join that day's message while it still waits, else go the next morning;
- no SMS between 21:00 and 07:00 Vietnam time: such a message waits for 07:00;
- paid bills, an opt-out and a missing contact are checked when the message is sent, not when
  it was queued: the household may have paid or opted out in between;
- a message is claimed before it is sent (queued → sending, committed), so two senders never
  send it twice; a worker killed while sending leaves it `sending` rather than risk a second
  SMS, and an agent can resend it.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator
from itertools import groupby, islice

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation

from customers import paylinks, unsubscribe
from customers.models import Bill, Customer
from payments.models import ReminderChannel, ReminderLine, ReminderMessage, ReminderOptOut
from payments.notifications import sms_backend
from portal.templatetags.portal_format import format_vnd

logger = logging.getLogger(__name__)

Kind = ReminderMessage.Kind
Status = ReminderMessage.Status
CHANNELS = (ReminderChannel.EMAIL, ReminderChannel.SMS)
QUIET_FROM = datetime.time(21, 0)
QUIET_UNTIL = datetime.time(7, 0)
# Customers queued per transaction: their day's messages are locked while bills join them.
_QUEUE_CHUNK = 2000

_URGENCY: dict[str, int] = {Kind.NEW_BILL: 0, Kind.DUE_SOON: 1, Kind.OVERDUE: 2}

SKIP_PAID = "paid"
SKIP_OPTED_OUT = "opted_out"
SKIP_NO_CONTACT = "no_contact"
# PAY_LINK_KEY or UNSUBSCRIBE_LINK_KEY unset: a reminder without its links is not sent.
SKIP_NO_LINKS = "no_links"
# The sender ran out of time while handing this message over: whether it went is unknown.
INTERRUPTED = "interrupted while sending"


def _contact_field(channel: str) -> str:
    return "email" if channel == ReminderChannel.EMAIL else "phone"


def earliest_send(channel: str, at: datetime.datetime) -> datetime.datetime:
    """`at`, or for an SMS in the quiet hours the next 07:00 (Vietnam time)."""
    local = timezone.localtime(at)
    if channel != ReminderChannel.SMS or QUIET_UNTIL <= local.time() < QUIET_FROM:
        return at
    day = local.date() + datetime.timedelta(days=1 if local.time() >= QUIET_FROM else 0)
    return timezone.make_aware(datetime.datetime.combine(day, QUIET_UNTIL))


def _next_morning(channel: str, day: datetime.date) -> datetime.datetime:
    return earliest_send(
        channel,
        timezone.make_aware(
            datetime.datetime.combine(day + datetime.timedelta(days=1), QUIET_UNTIL)
        ),
    )


# --- Queueing -----------------------------------------------------------------------------------
def _chunks(pairs: Iterable[tuple[int, int]]) -> Iterator[dict[int, list[int]]]:
    """(customer, bill) pairs in customer order → {customer: [bills]}, _QUEUE_CHUNK customers
    at a time."""
    grouped = groupby(pairs, key=lambda pair: pair[0])
    while True:
        chunk = {
            customer: [bill for _, bill in rows] for customer, rows in islice(grouped, _QUEUE_CHUNK)
        }
        if not chunk:
            return
        yield chunk


def _queue_chunk(
    chunk: dict[int, list[int]], *, kind: str, channel: str, now: datetime.datetime
) -> int:
    not_before = earliest_send(channel, now)
    day = timezone.localdate(not_before)
    waiting = dict(chunk)
    lines: list[ReminderLine] = []
    with transaction.atomic():
        # Today's message if it still waits, else tomorrow's: never a second one on one day.
        for _ in range(2):
            ReminderMessage.objects.bulk_create(
                [
                    ReminderMessage(
                        customer_id=customer,
                        channel=channel,
                        kind=kind,
                        day=day,
                        not_before=not_before,
                    )
                    for customer in waiting
                ],
                ignore_conflicts=True,
            )
            # Locked, so a sender cannot claim a message while bills join it.
            messages = ReminderMessage.objects.select_for_update().filter(
                customer_id__in=list(waiting), channel=channel, day=day
            )
            for message_id, customer, status in messages.values_list("pk", "customer_id", "status"):
                if status == Status.QUEUED:
                    lines.extend(
                        ReminderLine(
                            message_id=message_id, bill_id=bill, kind=kind, channel=channel
                        )
                        for bill in waiting.pop(customer)
                    )
            if not waiting:
                break
            not_before = _next_morning(channel, day)
            day = timezone.localdate(not_before)
        created = ReminderLine.objects.bulk_create(lines, ignore_conflicts=True)
    return len(created)


def _fresh_statistics() -> None:
    """The pass before may have just written a province's lines: planned on old statistics, the
    next pass takes the table for empty and scans it once per bill (hours, measured)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE payments_reminderline, payments_reminderoptout")


def reminders_queue(
    *, bills: QuerySet[Bill], kind: str, now: datetime.datetime | None = None
) -> int:
    """Queue a reminder of `kind` for each of these bills on each channel its customer can be
    reached on and has not opted out of, unless one was queued before; returns how many
    (bill, channel) reminders were queued."""
    now = now or timezone.now()
    queued = 0
    for channel in CHANNELS:
        _fresh_statistics()
        contact = _contact_field(channel)
        pairs = (
            bills.filter(status=Bill.Status.UNPAID, customer__is_active=True)
            .exclude(**{f"customer__{contact}": ""})
            .exclude(
                Exists(
                    ReminderOptOut.objects.filter(customer=OuterRef("customer"), channel=channel)
                )
            )
            .exclude(
                Exists(ReminderLine.objects.filter(bill=OuterRef("pk"), kind=kind, channel=channel))
            )
            .order_by("customer_id", "period")
            .values_list("customer_id", "pk")
        )
        # Read whole (a province's month is half a million pairs of ids, a few dozen MB): as a
        # cursor, PostgreSQL plans for the first rows and walks every bill in customer order,
        # minutes instead of seconds (measured).
        for chunk in _chunks(list(pairs)):
            queued += _queue_chunk(chunk, kind=kind, channel=channel, now=now)
    return queued


def reminders_queue_new_bills(
    *, since: datetime.datetime, now: datetime.datetime | None = None
) -> int:
    """Bills imported since `since` (a new billing period): each unpaid one."""
    return reminders_queue(
        bills=Bill.objects.filter(issued_at__gte=since), kind=Kind.NEW_BILL, now=now
    )


def reminders_queue_due(
    *, today: datetime.date | None = None, now: datetime.datetime | None = None
) -> int:
    """The daily round: bills due in REMINDER_DUE_SOON_DAYS days, and bills past their due date
    (once each) while their pay link still works."""
    today = today or timezone.localdate()
    soon = today + datetime.timedelta(days=settings.REMINDER_DUE_SOON_DAYS)
    queued = reminders_queue(
        bills=Bill.objects.filter(due_date__gt=today, due_date__lte=soon),
        kind=Kind.DUE_SOON,
        now=now,
    )
    oldest = today - settings.PAY_LINK_VALID_AFTER_DUE
    return queued + reminders_queue(
        bills=Bill.objects.filter(due_date__lt=today, due_date__gte=oldest),
        kind=Kind.OVERDUE,
        now=now,
    )


def reminder_opt_out(*, customer_id: int, channel: str) -> None:
    """Effective at once: messages still queued are skipped when their turn comes."""
    ReminderOptOut.objects.get_or_create(customer_id=customer_id, channel=channel)


# --- Sending ------------------------------------------------------------------------------------
def _claim(*, limit: int, now: datetime.datetime) -> list[int]:
    with transaction.atomic():
        ids = list(
            ReminderMessage.objects.filter(status=Status.QUEUED, not_before__lte=now)
            .order_by("not_before", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        ReminderMessage.objects.filter(pk__in=ids).update(
            status=Status.SENDING, attempts=F("attempts") + 1
        )
    return ids


def _sms_text(customer: Customer, bills: list[tuple[Bill, str]], opt_out: str) -> str:
    """Unaccented Vietnamese, as SMS gateways carry it."""
    parts = []
    for bill, kind in bills:
        when = "da qua han" if kind == Kind.OVERDUE else "han"
        parts.append(
            f"T{bill.period:%m/%Y} {format_vnd(bill.amount)} {when} {bill.due_date:%d/%m/%Y}, "
            f"thanh toan: {paylinks.pay_url(bill_id=bill.pk, due_date=bill.due_date)}"
        )
    return (
        f"EVN Ha Tinh: KH {customer.code} co tien dien chua thanh toan: {'; '.join(parts)}. "
        f"Tu choi tin nhan: {opt_out}"
    )


def _render(message: ReminderMessage, bills: list[tuple[Bill, str]]) -> tuple[str, str]:
    """(subject, text); the subject is empty for an SMS."""
    opt_out = unsubscribe.unsubscribe_url(customer_id=message.customer_id, channel=message.channel)
    if message.channel == ReminderChannel.SMS:
        return "", _sms_text(message.customer, bills, opt_out)
    with translation.override("vi"):
        context = {
            "customer": message.customer,
            "lines": [
                {
                    "bill": bill,
                    "overdue": kind == Kind.OVERDUE,
                    "url": paylinks.pay_url(bill_id=bill.pk, due_date=bill.due_date),
                }
                for bill, kind in bills
            ],
            "total": sum(bill.amount for bill, _ in bills),
            "opt_out": opt_out,
        }
        subject = render_to_string("payments/reminder_subject.txt", context).strip()
        return subject, render_to_string("payments/reminder_email.txt", context)


def _deliver(message: ReminderMessage, to: str, subject: str, text: str) -> None:
    if message.channel == ReminderChannel.SMS:
        sms_backend().send(to=to, text=text)
    else:
        send_mail(
            subject=subject,
            message=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[to],
        )


def _finish(message_id: int, **fields: object) -> None:
    ReminderMessage.objects.filter(pk=message_id).update(**fields)


def _send_one(message: ReminderMessage, *, now: datetime.datetime) -> str:
    """Send one claimed message; returns the status it ends in."""
    channel = message.channel
    later = earliest_send(channel, now)
    if later > now:
        # A retry that fell into the quiet hours: not an attempt.
        _finish(message.pk, status=Status.QUEUED, not_before=later, attempts=F("attempts") - 1)
        return Status.QUEUED
    lines = message.lines.all()
    unpaid = set(
        Bill.objects.filter(
            pk__in=[line.bill_id for line in lines], status=Bill.Status.UNPAID
        ).values_list("pk", flat=True)
    )
    # A bill reminded of twice the same day (new and already overdue) is named once, as the
    # most pressing.
    pressing: dict[int, tuple[Bill, str]] = {}
    for line in lines:
        if line.bill_id in unpaid:
            known = pressing.get(line.bill_id)
            if known is None or _URGENCY[line.kind] > _URGENCY[known[1]]:
                pressing[line.bill_id] = (line.bill, line.kind)
    bills = sorted(pressing.values(), key=lambda pair: pair[0].period)
    to = getattr(message.customer, _contact_field(channel))
    skip = ""
    if not bills:
        skip = SKIP_PAID
    elif ReminderOptOut.objects.filter(customer_id=message.customer_id, channel=channel).exists():
        skip = SKIP_OPTED_OUT
    elif not to:
        skip = SKIP_NO_CONTACT
    elif not paylinks.is_enabled() or not unsubscribe.is_enabled():
        skip = SKIP_NO_LINKS
    if skip:
        _finish(message.pk, status=Status.SKIPPED, reason=skip)
        return Status.SKIPPED
    subject, text = _render(message, bills)
    try:
        _deliver(message, to, subject, text)
    except SoftTimeLimitExceeded:
        # Cut off in the middle of sending: it may have gone, so it is not sent again.
        _finish(message.pk, status=Status.FAILED, reason=INTERRUPTED)
        raise
    except Exception as exc:  # noqa: BLE001 - a failed message is recorded, the batch goes on
        reason = f"{exc.__class__.__name__}: {exc}"[:500]
        if message.attempts >= settings.REMINDER_MAX_ATTEMPTS:
            _finish(message.pk, status=Status.FAILED, reason=reason)
            return Status.FAILED
        wait = datetime.timedelta(
            seconds=settings.REMINDER_RETRY_SECONDS * 2 ** (message.attempts - 1)
        )
        _finish(
            message.pk,
            status=Status.QUEUED,
            reason=reason,
            not_before=earliest_send(channel, now + wait),
        )
        return Status.QUEUED
    _finish(message.pk, status=Status.SENT, sent_at=timezone.now(), to=to, text=text, reason="")
    return Status.SENT


def _claimed(ids: list[int]) -> list[ReminderMessage]:
    """The claimed messages with their bills, read for the whole batch at once (whether the
    bills are still unpaid and the customer still wants messages is read at each send)."""
    return list(
        ReminderMessage.objects.select_related("customer")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=ReminderLine.objects.select_related("bill").order_by("bill__period"),
            )
        )
        .filter(pk__in=ids)
        .order_by("pk")
    )


def _send_claimed(ids: list[int], *, now: datetime.datetime) -> dict[str, int]:
    outcome: dict[str, int] = {}
    ordered = _claimed(ids)
    for index, message in enumerate(ordered):
        try:
            status = _send_one(message, now=now)
        except SoftTimeLimitExceeded:
            # Out of time: what was not handed over yet waits for the next sender, not an
            # attempt (one cut off while being handed over is already recorded failed).
            ReminderMessage.objects.filter(
                pk__in=[other.pk for other in ordered[index:]], status=Status.SENDING
            ).update(status=Status.QUEUED, attempts=F("attempts") - 1)
            raise
        outcome[status] = outcome.get(status, 0) + 1
    return outcome


def reminders_send_due(
    *, limit: int | None = None, now: datetime.datetime | None = None
) -> dict[str, int]:
    """Claim up to `limit` messages whose time has come and send them; returns how many ended
    in each status (a retried one counts as queued)."""
    now = now or timezone.now()
    ids = _claim(limit=limit or settings.REMINDER_BATCH_SIZE, now=now)
    return _send_claimed(ids, now=now) if ids else {}


def reminder_resend(*, message_id: int, now: datetime.datetime | None = None) -> str:
    """Send one message again now (an agent on the phone), whatever became of it, unless a
    sender is sending it this moment; the rules at sending still hold (paid bills, opt-out).
    Returns the status it ends in."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = (
            ReminderMessage.objects.filter(pk=message_id)
            .exclude(status=Status.SENDING)
            .update(status=Status.SENDING, attempts=F("attempts") + 1, reason="")
        )
    if not claimed:
        return Status.SENDING
    [message] = _claimed([message_id])
    # Quiet hours hold for an agent too: at night the message waits for 07:00.
    return _send_one(message, now=now)
