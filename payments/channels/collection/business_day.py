"""The partners' business day: a calendar day in GMT+7, whatever the server's time zone.

A collection payment belongs to the business day of the moment the partner took the money
(`paid_at`, stored as the payment's `succeeded_at`). The same day decides whether the partner may
still reverse it and which end-of-day settlement file must list it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from common.localtime import GMT7


def business_date(moment: datetime) -> date:
    """The GMT+7 calendar day of an aware datetime."""
    return moment.astimezone(GMT7).date()


def business_day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a business day as aware datetimes, for range queries."""
    start = datetime.combine(day, time.min, tzinfo=GMT7)
    return start, start + timedelta(days=1)


def previous_business_day_start(moment: datetime) -> datetime:
    """00:00 GMT+7 of the business day before the one `moment` falls on."""
    return business_day_bounds(business_date(moment) - timedelta(days=1))[0]
