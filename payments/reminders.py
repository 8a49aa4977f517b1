"""Reminders with a pay-now link: queued for a new period, a few days before the due date and
once after it, and sent in batches by the workers (`payments.tasks`).

The rules, each kept by the database or checked at the last moment:

- a bill is reminded of once per kind and channel (`ReminderLine`'s unique constraint), so a
  task run twice queues nothing new;
- a customer gets at most one message per channel and day (`ReminderMessage`'s): bills queued
  the same day join that day's message while it still waits, else go the next morning;
- no SMS between 21:00 and 07:00 Vietnam time: such a message waits for 07:00;
- paid bills, an opt-out and a missing contact are checked when the message's batch is sent
  (read once for the batch, just before it is handed over), not when it was queued: the
  household may have paid or opted out in between;
- a message is claimed before it is sent (queued → sending, committed), so two senders never
  send it twice; a worker killed while sending leaves it `sending` rather than risk a second
  SMS, and an agent can resend it.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import groupby, islice

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone, translation

from common.templatetags.formatting import format_vnd
from customers import paylinks, unsubscribe
from customers.models import Bill, Customer
from payments.models import ReminderChannel, ReminderLine, ReminderMessage, ReminderOptOut
from payments.notifications import sms_backend

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
    """A billing import has just added a period's bills, and the pass before may have just
    written a province's lines and messages. Planned on old statistics, PostgreSQL takes the
    new bills for one row and checks each against every line of its kind instead of looking
    its own up (hours, measured), and the senders' claim sorts every queued message instead of
    reading the first ones off its index. ANALYZE reads a sample: a second or two."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE customers_bill, payments_reminderline, payments_reminderoptout, "
                "payments_remindermessage"
            )


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
    if queued:
        _fresh_statistics()
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


@dataclass(frozen=True)
class _Ready:
    """A message that passed the rules, rendered, to be handed to its channel."""

    message: ReminderMessage
    to: str
    subject: str
    text: str


def _deliver(ready: _Ready) -> None:
    """Hand one message to its channel; runs in a delivery thread, so it touches no database."""
    if ready.message.channel == ReminderChannel.SMS:
        sms_backend().send(to=ready.to, text=ready.text)
    else:
        send_mail(
            subject=ready.subject,
            message=ready.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[ready.to],
        )


def _finish(message_id: int, **fields: object) -> None:
    ReminderMessage.objects.filter(pk=message_id).update(**fields)


@dataclass(frozen=True)
class _StillWanted:
    """What may have changed since the messages were queued, read once for a batch just before
    it is handed over (in a second or two at a gateway's usual pace)."""

    unpaid: frozenset[int]
    opted_out: frozenset[tuple[int, str]]

    @classmethod
    def read(cls, messages: list[ReminderMessage]) -> _StillWanted:
        bills = [line.bill_id for message in messages for line in message.lines.all()]
        customers = {message.customer_id for message in messages}
        return cls(
            unpaid=frozenset(
                Bill.objects.filter(pk__in=bills, status=Bill.Status.UNPAID).values_list(
                    "pk", flat=True
                )
            ),
            opted_out=frozenset(
                ReminderOptOut.objects.filter(customer_id__in=customers).values_list(
                    "customer_id", "channel"
                )
            ),
        )


def _prepare(
    message: ReminderMessage, *, now: datetime.datetime, wanted: _StillWanted
) -> str | _Ready:
    """Apply the rules to one claimed message: what to send, or the status it ends in without
    being sent (recorded here)."""
    channel = message.channel
    later = earliest_send(channel, now)
    if later > now:
        # A retry that fell into the quiet hours: not an attempt.
        _finish(message.pk, status=Status.QUEUED, not_before=later, attempts=F("attempts") - 1)
        return Status.QUEUED
    # A bill reminded of twice the same day (new and already overdue) is named once, as the
    # most pressing.
    pressing: dict[int, tuple[Bill, str]] = {}
    for line in message.lines.all():
        if line.bill_id in wanted.unpaid:
            known = pressing.get(line.bill_id)
            if known is None or _URGENCY[line.kind] > _URGENCY[known[1]]:
                pressing[line.bill_id] = (line.bill, line.kind)
    bills = sorted(pressing.values(), key=lambda pair: pair[0].period)
    to = getattr(message.customer, _contact_field(channel))
    skip = ""
    if not bills:
        skip = SKIP_PAID
    elif (message.customer_id, channel) in wanted.opted_out:
        skip = SKIP_OPTED_OUT
    elif not to:
        skip = SKIP_NO_CONTACT
    elif not paylinks.is_enabled() or not unsubscribe.is_enabled():
        skip = SKIP_NO_LINKS
    if skip:
        _finish(message.pk, status=Status.SKIPPED, reason=skip)
        return Status.SKIPPED
    subject, text = _render(message, bills)
    return _Ready(message=message, to=to, subject=subject, text=text)


_SENT_SQL = (
    "UPDATE payments_remindermessage "
    "SET status = %s, sent_at = %s, reason = '', \"to\" = %s, text = %s WHERE id = %s"
)


def _record_all(
    answered: list[tuple[_Ready, BaseException | None]],
    outcome: Counter[str],
    *,
    now: datetime.datetime,
) -> None:
    """Record how handing these messages over went, the sent ones in a single statement."""
    sent = []
    for item, error in answered:
        if error is None:
            # Adapted as the ORM stores it (naive UTC text on SQLite).
            sent_at = connection.ops.adapt_datetimefield_value(timezone.now())
            sent.append((sent_at, item.to, item.text, item.message.pk))
        else:
            outcome[_record(item, error, now=now)] += 1
    if sent:
        # One statement, many rows (pipelined by psycopg): bulk_update's CASE per column costs
        # more to build than the rows cost to write.
        with connection.cursor() as cursor:
            cursor.executemany(_SENT_SQL, [(Status.SENT, *row) for row in sent])
        outcome[Status.SENT] += len(sent)


def _record(ready: _Ready, error: BaseException | None, *, now: datetime.datetime) -> str:
    """Record how handing a message over went; returns the status it ends in."""
    message = ready.message
    if error is None:
        _record_all([(ready, None)], Counter(), now=now)
        return Status.SENT
    reason = f"{error.__class__.__name__}: {error}"[:500]
    if message.attempts >= settings.REMINDER_MAX_ATTEMPTS:
        _finish(message.pk, status=Status.FAILED, reason=reason)
        return Status.FAILED
    wait = datetime.timedelta(seconds=settings.REMINDER_RETRY_SECONDS * 2 ** (message.attempts - 1))
    _finish(
        message.pk,
        status=Status.QUEUED,
        reason=reason,
        not_before=earliest_send(message.channel, now + wait),
    )
    return Status.QUEUED


# Outcomes written in one transaction: a commit for each message would cost more than sending
# it (measured: 1.5 ms of the 2.4 ms a message took were its own commit).
_RECORD_EVERY = 50


def _deliver_all(ready: list[_Ready], *, now: datetime.datetime) -> Counter[str]:
    """Hand the messages over REMINDER_SEND_CONCURRENCY at a time: a gateway answers in tens of
    milliseconds, so one at a time a province's notices would take hours. A message is given to
    a thread only when one is free, and outcomes are recorded every _RECORD_EVERY answers, so a
    sender stopped mid-batch knows which went, which may have, and which never left (a sender
    killed outright leaves at most that many sent messages `sending`: never sent twice)."""
    outcome: Counter[str] = Counter()
    waiting = iter(ready)
    in_flight: dict[Future[None], _Ready] = {}
    answered: list[tuple[_Ready, BaseException | None]] = []

    def record() -> None:
        with transaction.atomic():
            _record_all(answered, outcome, now=now)
        answered.clear()

    concurrency = max(settings.REMINDER_SEND_CONCURRENCY, 1)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        try:
            while True:
                for item in islice(waiting, concurrency - len(in_flight)):
                    in_flight[pool.submit(_deliver, item)] = item
                if not in_flight:
                    record()
                    return outcome
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    item = in_flight.pop(future)
                    error = future.exception()
                    if isinstance(error, SoftTimeLimitExceeded):
                        # Cut off in the middle of sending: it may have gone, not sent again.
                        _finish(item.message.pk, status=Status.FAILED, reason=INTERRUPTED)
                        raise error
                    answered.append((item, error))
                if len(answered) >= _RECORD_EVERY:
                    record()
        except BaseException:
            # Out of time, or anything else: nothing may stay `sending` unless it may have gone.
            _interrupted(answered, in_flight, list(waiting), now=now)
            raise


def _interrupted(
    answered: list[tuple[_Ready, BaseException | None]],
    in_flight: dict[Future[None], _Ready],
    never_left: list[_Ready],
    *,
    now: datetime.datetime,
) -> None:
    """Out of time: a message that never left waits for the next sender (not an attempt), one
    whose answer came back is recorded as usual, one still with the gateway may have gone and
    is recorded failed rather than risk a second message."""
    # A delivery not started yet is cancelled, so that it never leaves after this.
    never_left = never_left + [item for future, item in in_flight.items() if future.cancel()]
    ReminderMessage.objects.filter(pk__in=[item.message.pk for item in never_left]).update(
        status=Status.QUEUED, attempts=F("attempts") - 1
    )
    for item, error in answered:
        _record(item, error, now=now)
    for future, item in in_flight.items():
        if future.cancelled():
            continue
        if future.done() and not isinstance(future.exception(), SoftTimeLimitExceeded):
            _record(item, future.exception(), now=now)
        else:
            _finish(item.message.pk, status=Status.FAILED, reason=INTERRUPTED)


def _claimed(ids: list[int]) -> list[ReminderMessage]:
    """The claimed messages with their bills, read for the whole batch at once."""
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
    outcome: Counter[str] = Counter()
    ready: list[_Ready] = []
    try:
        messages = _claimed(ids)
        wanted = _StillWanted.read(messages)
        with transaction.atomic():  # the skipped ones' outcomes, one commit
            for message in messages:
                prepared = _prepare(message, now=now, wanted=wanted)
                if isinstance(prepared, _Ready):
                    ready.append(prepared)
                else:
                    outcome[prepared] += 1
    except BaseException:
        # Stopped before any was handed over: they wait for the next sender.
        ReminderMessage.objects.filter(pk__in=ids, status=Status.SENDING).update(
            status=Status.QUEUED, attempts=F("attempts") - 1
        )
        raise
    outcome.update(_deliver_all(ready, now=now))
    return dict(outcome)


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
    # Quiet hours hold for an agent too: at night the message waits for 07:00.
    [(status, _count)] = _send_claimed([message_id], now=now).items()
    return status
