"""The number managers live by: the share of customers paying without cash, per area and month.

Definition (docs/architecture.md, "Reports"): for a billing month, the non-cash rate of an area is
the number of customers whose bill for that month was paid through a non-cash channel
(`Payment.method` in vietqr, redirect, collection) divided by the number of customers billed that
month. A customer has one bill per month (unique `(customer, period)`), so counting bills counts
customers.
A bill's payer is `Bill.paid_by`: set only by the payment that actually paid it, cleared by a
reversal, so refunded duplicates and reversed payments never count.

Every figure of the dashboard comes from one set-based query over the month's bills (about 470,000
rows at province scale, found through the `bill_period_status` index), cached for a few minutes:
never a loop over customers. The cash-payer list is its own query, paged or streamed.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from common.cache_guard import outage_tolerated
from customers.models import Bill, ServiceArea
from payments.models import Partner, Payment, ReminderLine, ReminderMessage

NON_CASH_METHODS: list[str] = sorted(Payment.NON_CASH_METHODS)
# How long a month's tally is reused (see `month_tally`).
REPORT_CACHE_SECONDS = 600
# A closed month (`last_closed_month` or older) barely moves, and the trend reads twelve of them:
# their tallies are kept longer, so the trend costs a query only for a month nobody asked for.
CLOSED_MONTH_CACHE_SECONDS = 6 * 3600
TREND_MONTHS = 12
CASH: str = Payment.Method.CASH.value


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


@dataclass(frozen=True)
class AreaRate:
    """One row of the dashboard: an area (or the province, `code` empty) in one month."""

    code: str
    name: str
    billed: int
    non_cash: int
    cash: int
    paid: int
    target: float = 80.0

    @property
    def unpaid(self) -> int:
        return self.billed - self.paid

    @property
    def rate(self) -> float | None:
        """Non-cash customers ÷ customers billed, in percent (None when nobody was billed)."""
        return _percent(self.non_cash, self.billed)

    @property
    def short_of_target(self) -> int:
        """How many more non-cash customers would bring this row up to the target."""
        needed = math.ceil(round(self.target * self.billed / 100.0, 6))
        return max(0, needed - self.non_cash)

    @property
    def cash_rate(self) -> float | None:
        return _percent(self.cash, self.billed)

    @property
    def unpaid_rate(self) -> float | None:
        return _percent(self.unpaid, self.billed)


@dataclass(frozen=True)
class NonCashReport:
    period: datetime.date
    target: float
    areas: list[AreaRate]
    total: AreaRate
    computed_at: datetime.datetime | None = None
    due_date: datetime.date | None = None

    @property
    def is_open(self) -> bool:
        """Bills not yet due: the rate is still growing, so it is not measured against the
        target (a month billed yesterday would read "0.2 %, 1,596 short")."""
        return self.due_date is not None and self.due_date >= timezone.localdate()

    @property
    def below_target(self) -> list[AreaRate]:
        return [a for a in self.areas if a.rate is not None and a.rate < self.target]


@dataclass(frozen=True)
class ChannelRow:
    """Customers of a month who paid through one partner of one channel."""

    method: str
    partner_code: str
    partner_name: str
    customers: int
    amount: int
    share: float | None = None


@dataclass
class ChannelGroup:
    method: str
    customers: int = 0
    amount: int = 0
    share: float | None = None
    partners: list[ChannelRow] = field(default_factory=list)

    @property
    def is_cash(self) -> bool:
        return self.method == CASH


def noncash_target() -> float:
    return float(getattr(settings, "NONCASH_TARGET_PERCENT", 80.0))


def report_periods() -> list[datetime.date]:
    """Every billing month from the first to the last bill, newest first.

    MIN and MAX of `period` come from the `bill_period_status` index in two index probes; a
    DISTINCT over 5.6 M bills would read them all.
    """
    bounds = Bill.objects.aggregate(first=Min("period"), last=Max("period"))
    first, last = bounds["first"], bounds["last"]
    if first is None or last is None:
        return []
    months = []
    year, month = last.year, last.month
    while (year, month) >= (first.year, first.month):
        months.append(datetime.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def report_default_period(
    periods: list[datetime.date], *, today: datetime.date | None = None
) -> datetime.date | None:
    """The month a manager looks at first: the newest whose bills have had a whole month to be
    paid (two calendar months before today's), else the newest there is.

    The month still being collected shows a rate that climbs until its due date; judging an
    area against the target on it would mislead. Decided by date alone, with no query.
    """
    if not periods:
        return None
    closed = last_closed_month(today=today)
    return next((p for p in periods if p <= closed), periods[0])


def last_closed_month(*, today: datetime.date | None = None) -> datetime.date:
    """The newest billing month whose bills have had a whole month to be paid: two calendar
    months before today's."""
    today = today or timezone.localdate()
    index = today.year * 12 + today.month - 1 - 2
    return datetime.date(index // 12, index % 12 + 1, 1)


def _month_bills(period: datetime.date, area_code: str | None = None) -> QuerySet[Bill]:
    bills = Bill.objects.filter(period=period)
    if area_code:
        bills = bills.filter(customer__service_area__code=area_code)
    return bills


@dataclass(frozen=True)
class MonthTally:
    """The month's bills counted once, by area, channel and partner (the one heavy query)."""

    period: datetime.date
    computed_at: datetime.datetime
    # (area id, payment method or None when unpaid, partner id or None, bills, paid, amount)
    rows: tuple[tuple[int, str | None, int | None, int, int, int], ...]
    # The month's last due date: until it has passed, households are still paying.
    due_date: datetime.date | None = None


def _tally_key(period: datetime.date) -> str:
    return f"reports:noncash:v2:{period:%Y-%m}"


def month_tally(*, period: datetime.date, fresh: bool = False) -> MonthTally:
    """Count the month's bills by area × channel × partner in one set-based query, cached.

    At province scale (470,000 bills a month joined to 5.6 M payments) the query takes a few
    seconds, so its small result (a few hundred rows) is kept in the cache for
    `REPORT_CACHE_SECONDS`: every view of the dashboard, every area's drill-down and the
    province total come from it. A month's figures move slowly once it is billed; the page says
    when they were computed. A cache outage only costs the query.
    """
    key = _tally_key(period)
    if not fresh:
        cached = None
        with outage_tolerated("the non-cash tally of %s computed afresh", period):
            cached = cache.get(key)
        if isinstance(cached, MonthTally):
            return cached
    rows = (
        Bill.objects.filter(period=period)
        .values("customer__service_area_id", "paid_by__method", "paid_by__partner_id")
        .annotate(
            bills=Count("id"),
            paid=Count("id", filter=Q(status=Bill.Status.PAID)),
            amount=Sum("amount"),
            due=Max("due_date"),
        )
        .order_by()
    )
    dues = [row["due"] for row in rows if row["due"] is not None]
    tally = MonthTally(
        period=period,
        computed_at=timezone.now(),
        rows=tuple(
            (
                row["customer__service_area_id"],
                row["paid_by__method"],
                row["paid_by__partner_id"],
                row["bills"],
                row["paid"],
                row["amount"] or 0,
            )
            for row in rows
        ),
        due_date=max(dues) if dues else None,
    )
    closed = period <= last_closed_month()
    with outage_tolerated("the non-cash tally of %s not cached", period):
        cache.set(key, tally, CLOSED_MONTH_CACHE_SECONDS if closed else REPORT_CACHE_SECONDS)
    return tally


def _area_sums(tally: MonthTally) -> dict[int, dict[str, int]]:
    """Per area id: customers billed, paid, paid without cash and in cash."""
    sums: dict[int, dict[str, int]] = {}
    for area_id, method, _partner, bills, paid, _amount in tally.rows:
        row = sums.setdefault(area_id, {"billed": 0, "non_cash": 0, "cash": 0, "paid": 0})
        row["billed"] += bills
        row["paid"] += paid
        if method in NON_CASH_METHODS:
            row["non_cash"] += bills
        elif method == CASH:
            row["cash"] += bills
    return sums


def noncash_report(*, period: datetime.date, tally: MonthTally | None = None) -> NonCashReport:
    """The non-cash rate of every service area and of the province for one billing month.

    Computed from `month_tally` (one grouped query over the month's bills joined to their
    customer for the area and to the payment that paid them for the channel); areas without
    bills that month show no rate.
    """
    tally = tally or month_tally(period=period)
    sums = _area_sums(tally)
    target = noncash_target()
    areas = []
    for area in ServiceArea.objects.order_by("code"):
        row = sums.get(area.id, {})
        areas.append(
            AreaRate(
                code=area.code,
                name=area.name,
                billed=row.get("billed", 0),
                non_cash=row.get("non_cash", 0),
                cash=row.get("cash", 0),
                paid=row.get("paid", 0),
                target=target,
            )
        )
    total = AreaRate(
        code="",
        name="",
        billed=sum(a.billed for a in areas),
        non_cash=sum(a.non_cash for a in areas),
        cash=sum(a.cash for a in areas),
        paid=sum(a.paid for a in areas),
        target=target,
    )
    return NonCashReport(
        period=period,
        target=target,
        areas=areas,
        total=total,
        computed_at=tally.computed_at,
        due_date=tally.due_date,
    )


@dataclass(frozen=True)
class TrendMonth:
    """One month of the trend: the area's (or the province's) figures that month."""

    period: datetime.date
    row: AreaRate
    due_date: datetime.date | None = None

    @property
    def is_open(self) -> bool:
        """Bills not yet due: still growing, as `NonCashReport.is_open`."""
        return self.due_date is not None and self.due_date >= timezone.localdate()


def noncash_trend(
    *,
    periods: list[datetime.date],
    period: datetime.date,
    area_code: str | None = None,
    months: int = TREND_MONTHS,
) -> list[TrendMonth]:
    """The non-cash rate of the province (or one area) in each of the last `months` billing
    months up to `period`, oldest first; `periods` are the months there are bills for
    (`report_periods`). Each month comes from its cached `month_tally`."""
    chosen = sorted((p for p in periods if p <= period), reverse=True)[:months]
    area_id = None
    if area_code:
        area_id = ServiceArea.objects.filter(code=area_code).values_list("id", flat=True).first()
    target = noncash_target()
    trend = []
    for month in reversed(chosen):
        tally = month_tally(period=month)
        sums = [row for key, row in _area_sums(tally).items() if area_id in (None, key)]
        trend.append(
            TrendMonth(
                period=month,
                row=AreaRate(
                    code=area_code or "",
                    name="",
                    billed=sum(row["billed"] for row in sums),
                    non_cash=sum(row["non_cash"] for row in sums),
                    cash=sum(row["cash"] for row in sums),
                    paid=sum(row["paid"] for row in sums),
                    target=target,
                ),
                due_date=tally.due_date,
            )
        )
    return trend


def noncash_channels(
    *, period: datetime.date, area_code: str | None = None, tally: MonthTally | None = None
) -> list[ChannelGroup]:
    """The month's paid bills by channel (method) and partner, for the province or one area.

    Shares are of the customers billed (in the area, or the province), the same denominator as
    the non-cash rate, so the non-cash channels' shares add up to the rate.
    """
    tally = tally or month_tally(period=period)
    area_id = None
    if area_code:
        area_id = ServiceArea.objects.filter(code=area_code).values_list("id", flat=True).first()
    rows = [row for row in tally.rows if area_id is None or row[0] == area_id]
    billed = sum(row[3] for row in rows)
    partners = Partner.objects.in_bulk({row[2] for row in rows if row[2] is not None})
    counts: dict[tuple[str, int | None], list[int]] = {}
    for _area, method, partner_id, bills, _paid, amount in rows:
        if method is None:
            continue  # not paid
        sums = counts.setdefault((method, partner_id), [0, 0])
        sums[0] += bills
        sums[1] += amount
    groups: dict[str, ChannelGroup] = {}
    for (method, partner_id), (customers, amount) in counts.items():
        partner = partners.get(partner_id) if partner_id is not None else None
        group = groups.setdefault(method, ChannelGroup(method=method))
        group.customers += customers
        group.amount += amount
        group.partners.append(
            ChannelRow(
                method=method,
                partner_code=partner.code if partner else "",
                partner_name=partner.name if partner else "",
                customers=customers,
                amount=amount,
                share=_percent(customers, billed),
            )
        )
    order = [*NON_CASH_METHODS, CASH]
    result = sorted(
        groups.values(),
        key=lambda g: (order.index(g.method) if g.method in order else len(order), -g.customers),
    )
    for group in result:
        group.share = _percent(group.customers, billed)
        group.partners.sort(key=lambda p: (-p.customers, p.partner_code))
    return result


CASH_CUSTOMER_FIELDS = (
    "customer__code",
    "customer__name",
    "customer__phone",
    "customer__address",
    "customer__service_area__name",
    "paid_by__partner__name",
    "amount",
    "paid_at",
)


def cash_customers(*, period: datetime.date, area_code: str | None = None) -> QuerySet[Bill]:
    """Customers who paid the month's bill in cash (counter or collector), for outreach.

    Rows are dictionaries of `CASH_CUSTOMER_FIELDS`, ordered by area then customer code.
    """
    return (
        _month_bills(period, area_code)
        .filter(paid_by__method=CASH)
        .values(*CASH_CUSTOMER_FIELDS)
        .order_by("customer__service_area__code", "customer__code")
    )


def cash_customers_iter(
    *, period: datetime.date, area_code: str | None = None, chunk_size: int = 5000
) -> Iterator[dict]:
    """The same rows streamed with a server-side cursor: 150,000 rows never sit in memory."""
    return cash_customers(period=period, area_code=area_code).iterator(chunk_size=chunk_size)  # type: ignore[return-value]


# A reminded bill counts as brought back by its reminder when paid this soon after one was sent.
REMINDER_EFFECT_WINDOW = datetime.timedelta(days=3)


@dataclass(frozen=True)
class ReminderEffect:
    """Bills of a month reminded on one channel in one area, and how many were paid within
    REMINDER_EFFECT_WINDOW of a reminder sent on that channel."""

    area_code: str
    area_name: str
    channel: str
    reminded: int
    paid_soon: int

    @property
    def rate(self) -> float | None:
        return _percent(self.paid_soon, self.reminded)


def reminder_effect(*, period: datetime.date, area_code: str | None = None) -> list[ReminderEffect]:
    """Per area and channel: the month's bills named by a sent reminder, and those paid within
    three days of one. One grouped query over the month's reminder lines, cached like the tally."""
    key = f"reports:reminder-effect:{period:%Y-%m}:{area_code or ''}"
    cached = None
    with outage_tolerated("the reminders' effect of %s computed afresh", period):
        cached = cache.get(key)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    lines = ReminderLine.objects.filter(
        bill__period=period, message__status=ReminderMessage.Status.SENT
    )
    if area_code:
        lines = lines.filter(bill__customer__service_area__code=area_code)
    sent_at = F("message__sent_at")
    rows = (
        lines.values(
            "bill__customer__service_area__code", "bill__customer__service_area__name", "channel"
        )
        .annotate(
            reminded=Count("bill", distinct=True),
            paid_soon=Count(
                "bill",
                distinct=True,
                filter=Q(
                    bill__paid_at__gte=sent_at, bill__paid_at__lt=sent_at + REMINDER_EFFECT_WINDOW
                ),
            ),
        )
        .order_by("bill__customer__service_area__code", "channel")
    )
    effect = [
        ReminderEffect(
            area_code=row["bill__customer__service_area__code"],
            area_name=row["bill__customer__service_area__name"],
            channel=row["channel"],
            reminded=row["reminded"],
            paid_soon=row["paid_soon"],
        )
        for row in rows
    ]
    with outage_tolerated("the reminders' effect of %s not cached", period):
        cache.set(key, effect, REPORT_CACHE_SECONDS)
    return effect
