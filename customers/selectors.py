"""Reads of customers and bills, shaped for the pages and APIs that show them.

The public lookup (`customer_bills_lookup`) is two indexed queries: the customer by its unique
code with the service area joined, then that customer's bills through the (customer, period)
unique index. Its result holds only what a public page may show (masked name and address), so a
template or serializer built on it cannot leak a phone number or an e-mail address.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from customers.masking import mask_address, mask_name
from customers.models import Bill, Customer
from portal import fastcache

logger = logging.getLogger(__name__)

HISTORY_PERIODS = 12


def bills_cache_key(code: str) -> str:
    return f"bills:v2:{code}"


def bills_cache_forget(*, customer_codes: Iterable[str]) -> None:
    """Drop cached lookups of these customers: a payment settled, or new bills were imported.

    The cache is short-lived anyway (LOOKUP_CACHE_SECONDS): a stale page could invite a household
    to pay a bill twice, so every change that a lookup shows clears it at once.
    """
    keys = [bills_cache_key(code) for code in customer_codes]
    try:
        fastcache.delete_many(keys)
    except Exception:  # noqa: BLE001 - a cache outage must not undo what was committed
        logger.warning("could not clear %d cached lookup(s)", len(keys))


def bills_cache_forget_all() -> None:
    """Drop every cached lookup: a billing file changes nearly every customer's, and clearing the
    few lookups cached now costs far less than naming half a million customers."""
    try:
        if fastcache.delete_prefixed(bills_cache_key("")):
            return
    except Exception:  # noqa: BLE001 - a cache outage must not undo what was committed
        logger.warning("could not clear the cached lookups")
        return
    # Without Redis (the embedded default, a demo-sized database) each customer's key by name.
    bills_cache_forget(customer_codes=Customer.objects.values_list("code", flat=True))


@dataclass(frozen=True)
class BillLine:
    id: int
    number: str
    period: datetime.date
    kwh: int
    amount: int
    due_date: datetime.date
    status: str

    @property
    def is_paid(self) -> bool:
        return self.status == Bill.Status.PAID

    @property
    def is_overdue(self) -> bool:
        # Computed when read, not when cached: a bill becomes overdue at midnight.
        return not self.is_paid and self.due_date < timezone.localdate()


def _bill_row(b: BillLine) -> list[Any]:
    return [b.id, b.number, b.period.isoformat(), b.kwh, b.amount, b.due_date.isoformat(), b.status]


@dataclass(frozen=True)
class CustomerBills:
    """A customer's public face and bills: masked, safe to show to whoever knows the code."""

    code: str
    name: str
    address: str
    service_area_code: str
    service_area_name: str
    # The last HISTORY_PERIODS billing periods plus any older bill still unpaid, newest first.
    bills: tuple[BillLine, ...] = field(default_factory=tuple)

    @property
    def unpaid(self) -> list[BillLine]:
        """Unpaid bills, oldest first: the order in which they fall due."""
        return sorted((bill for bill in self.bills if not bill.is_paid), key=lambda b: b.period)

    @property
    def total_due(self) -> int:
        return sum(bill.amount for bill in self.bills if not bill.is_paid)

    @property
    def history(self) -> list[BillLine]:
        """The last HISTORY_PERIODS periods, newest first (older unpaid bills sort after them)."""
        return list(self.bills[:HISTORY_PERIODS])

    @property
    def has_overdue(self) -> bool:
        return any(bill.is_overdue for bill in self.bills)

    def to_cache(self) -> list[Any]:
        """A compact JSON form: a list, dates as ISO text (asdict() would deep-copy it all)."""
        return [
            self.code,
            self.name,
            self.address,
            self.service_area_code,
            self.service_area_name,
            [_bill_row(b) for b in self.bills],
        ]

    @classmethod
    def from_cache(cls, data: list[Any]) -> CustomerBills:
        code, name, address, area_code, area_name, bills = data
        return cls(
            code=code,
            name=name,
            address=address,
            service_area_code=area_code,
            service_area_name=area_name,
            bills=tuple(
                BillLine(
                    id=bill_id,
                    number=number,
                    period=datetime.date.fromisoformat(period),
                    kwh=kwh,
                    amount=amount,
                    due_date=datetime.date.fromisoformat(due),
                    status=status,
                )
                for bill_id, number, period, kwh, amount, due, status in bills
            ),
        )


# Two indexed queries, written in SQL: this is the portal's hottest path (every household,
# every bank app), and the ORM's model building would cost more than the queries themselves.
# Only what a public page shows is read: phone and e-mail stay in the database.
_CUSTOMER_SQL = """
    SELECT c.id, c.code, c.name, c.address, a.code, a.name
    FROM customers_customer c JOIN customers_servicearea a ON a.id = c.service_area_id
    WHERE c.code = %s AND c.is_active
"""
# The last periods and every older unpaid bill, newest first, in one query: a window numbers the
# customer's bills from the newest, so an old debt is never hidden from the total asked for.
_BILLS_SQL = """
    SELECT id, number, period, kwh, amount, due_date, status FROM (
        SELECT id, number, period, kwh, amount, due_date, status,
               row_number() OVER (ORDER BY period DESC) AS recency
        FROM customers_bill WHERE customer_id = %s
    ) bills
    WHERE recency <= %s OR status = 'unpaid'
    ORDER BY period DESC
"""


def _as_date(value: Any) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))


def _lookup_from_database(code: str) -> CustomerBills | None:
    with connection.cursor() as cursor:
        cursor.execute(_CUSTOMER_SQL, [code])
        row = cursor.fetchone()
        if row is None:
            return None
        customer_id, code, name, address, area_code, area_name = row
        cursor.execute(_BILLS_SQL, [customer_id, HISTORY_PERIODS])
        bills = tuple(
            BillLine(
                id=bill_id,
                number=number,
                period=_as_date(period),
                kwh=kwh,
                amount=amount,
                due_date=_as_date(due_date),
                status=status,
            )
            for bill_id, number, period, kwh, amount, due_date, status in cursor.fetchall()
        )
    return CustomerBills(
        code=code,
        name=mask_name(name),
        address=mask_address(address),
        service_area_code=area_code,
        service_area_name=area_name,
        bills=bills,
    )


def _cache_get(key: str) -> CustomerBills | None:
    try:
        data = fastcache.get_json(key)
        return CustomerBills.from_cache(data) if isinstance(data, list) else None
    except Exception:  # noqa: BLE001 - a cache outage or an old entry shape: read the database
        logger.warning("bills cache unavailable or unreadable for %s", key)
        return None


def _cache_set(key: str, value: CustomerBills) -> None:
    try:
        fastcache.set_json(key, value.to_cache(), settings.LOOKUP_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - the lookup is still correct without the cache
        logger.warning("could not cache the bills of %s", key)


def customer_bills_lookup(*, code: str) -> CustomerBills | None:
    """The public lookup by a normalised, validated code; None when no active customer has it.

    Served from the cache when fresh, otherwise two indexed queries (customer, bills).
    """
    key = bills_cache_key(code)
    cached = _cache_get(key)
    if cached is not None:
        return cached
    result = _lookup_from_database(code)
    if result is not None:  # an unknown code is not cached: a new customer is found at once
        _cache_set(key, result)
    return result


def lookup_api_body(lookup: CustomerBills) -> dict[str, Any]:
    """The contract's JSON of the lookup API (customers.api.serializers documents the same)."""
    return {
        "customer": {
            "code": lookup.code,
            "name": lookup.name,
            "address": lookup.address,
            "service_area": {"code": lookup.service_area_code, "name": lookup.service_area_name},
        },
        "bills": [
            {
                "number": bill.number,
                "period": f"{bill.period:%Y-%m}",
                "kwh": bill.kwh,
                "amount": bill.amount,
                "due_date": bill.due_date.isoformat(),
                "status": bill.status,
            }
            for bill in lookup.bills
        ],
        "total_due": lookup.total_due,
    }
