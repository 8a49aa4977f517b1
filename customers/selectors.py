"""Reads of customers and bills, shaped for the pages and APIs that show them.

The public lookup (`customer_bills_lookup`) is one query: the customer by its unique code with
the service area joined, and that customer's bills through the (customer, period) unique index.
Its result holds only what a public page may show (masked name and address), so a template or
serializer built on it cannot leak a phone number or an e-mail address.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from common import fastcache
from common.cache_guard import outage_tolerated
from customers.masking import mask_address, mask_name
from customers.models import Bill, Customer

logger = logging.getLogger(__name__)

HISTORY_PERIODS = 12


def bills_cache_key(code: str) -> str:
    """Where a customer's lookup is cached for the pages (`customer_bills_data`)."""
    return f"bills:v2:{code}"


def api_cache_key(code: str) -> str:
    """Where the lookup API's answer for a customer is cached, as the bytes it sends
    (`lookup_api_answer`). Under the pages' prefix, so that clearing every lookup clears it."""
    return bills_cache_key(f"api:{code}")


def bills_cache_forget(*, customer_codes: Iterable[str]) -> None:
    """Drop cached lookups of these customers: a payment settled, or new bills were imported.

    The cache is short-lived anyway (LOOKUP_CACHE_SECONDS): a stale page could invite a household
    to pay a bill twice, so every change that a lookup shows clears it at once.
    """
    keys = [key for code in customer_codes for key in (bills_cache_key(code), api_cache_key(code))]
    # A cache outage must not undo what was committed.
    with outage_tolerated("%d cached lookup(s) not cleared", len(keys)):
        fastcache.delete_many(keys)


def bills_cache_forget_all() -> None:
    """Drop every cached lookup: a billing file changes nearly every customer's, and clearing the
    few lookups cached now costs far less than naming half a million customers."""
    cleared = None
    with outage_tolerated("the cached lookups not cleared"):
        cleared = fastcache.delete_prefixed(bills_cache_key(""))
    if cleared is not False:  # done, or the cache is away (nothing to clear key by key)
        return
    # Without Redis (the embedded default, a demo-sized database) each customer's key by name.
    bills_cache_forget(customer_codes=Customer.objects.values_list("code", flat=True))


def total_due(bills: Iterable[tuple[int, str]]) -> int:
    """What is still owed on bills given as (amount, status): the amounts not paid."""
    return sum(amount for amount, status in bills if status != Bill.Status.PAID)


class BillLine(NamedTuple):
    """A bill as the pages show it. A named tuple, not a frozen dataclass: a page makes
    thirteen, and a frozen dataclass sets each field through object.__setattr__ (measured:
    `CustomerBills.from_cache` of a year of bills took 27 µs, now 11)."""

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
        return total_due((bill.amount, bill.status) for bill in self.bills)

    @property
    def history(self) -> list[BillLine]:
        """The last HISTORY_PERIODS periods, newest first (older unpaid bills sort after them)."""
        return list(self.bills[:HISTORY_PERIODS])

    @property
    def has_overdue(self) -> bool:
        return any(bill.is_overdue for bill in self.bills)

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
                    bill_id,
                    number,
                    datetime.date.fromisoformat(period),
                    kwh,
                    amount,
                    datetime.date.fromisoformat(due),
                    status,
                )
                for bill_id, number, period, kwh, amount, due, status in bills
            ),
        )


# One round trip, written in SQL: this is the portal's hottest path (every household, every bank
# app), and the ORM's model building would cost more than the query itself. The customer by its
# unique code with the service area joined, and its bills through the (customer, period) unique
# index: the last periods and every older unpaid bill, newest first (a window numbers the bills
# from the newest, so an old debt is never hidden from the total asked for). A row per bill,
# the customer's columns repeated; a customer without bills is one row without a bill.
# Only what a public page shows is read: phone and e-mail stay in the database.
_LOOKUP_SQL = """
    SELECT c.code, c.name, c.address, a.code, a.name,
           b.id, b.number, b.period, b.kwh, b.amount, b.due_date, b.status
    FROM customers_customer c
    JOIN customers_servicearea a ON a.id = c.service_area_id
    LEFT JOIN (
        SELECT id, number, period, kwh, amount, due_date, status,
               row_number() OVER (ORDER BY period DESC) AS recency
        FROM customers_bill
        WHERE customer_id = (SELECT id FROM customers_customer WHERE code = %s)
    ) b ON b.recency <= %s OR b.status = 'unpaid'
    WHERE c.code = %s AND c.is_active
    ORDER BY b.period DESC
"""


def _as_date(value: Any) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))


# PostgreSQL plans the lookup once per connection: planning it cost more than running it
# (0.3 ms against 0.1 ms, measured). psycopg prepares it on a connection's first lookup (the
# settings allow it: Django's own cursors bind their values in the query text and never
# prepare) and runs it by name from then on, the values sent apart, so the server does not even
# parse a query. psycopg forgets what it prepared when the connection rolls a transaction back
# (the statement might name something the rollback undid): the next lookup prepares it again.
# A pooler in transaction mode (PgBouncer) could send the statement and its execution to
# different server sessions: the portal connects to PostgreSQL directly.
_STATEMENT_LOST = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.FeatureNotSupported)


def _lookup_rows(code: str) -> list[tuple[Any, ...]]:
    connection = connections[DEFAULT_DB_ALIAS]
    params: list[Any] = [code, HISTORY_PERIODS, code]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LOOKUP_SQL, params)
            return cursor.fetchall()
    # Django's cursor is left out: around a query this short its wrappers cost more than the
    # query's own work in this process (measured). What they check is checked here (a failed
    # health check, a connection shared between threads, a transaction broken by an error);
    # the query runs on Django's connection (the same session and transaction), raises Django's
    # error classes, and is recorded as Django's debug cursor records one, for the tests and
    # tools that count queries (connection.execute_wrapper hooks do not see it).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    started = time.monotonic()
    try:
        with connection.wrap_database_errors:
            try:
                return _prepared(connection.connection, params)
            except _STATEMENT_LOST:
                # Gone behind psycopg's back (a DEALLOCATE ALL or DISCARD ALL it did not run)
                # or stale (a migration changed a column's type): prepared again, once, where
                # the failed statement did not abort a surrounding transaction. psycopg
                # forgets its statements when it runs this command.
                if connection.in_atomic_block:
                    raise
                connection.connection.execute("DEALLOCATE ALL")
                return _prepared(connection.connection, params)
    finally:
        if connection.queries_logged:
            connection.queries_log.append(
                {"sql": f"{_LOOKUP_SQL} -- {params}", "time": f"{time.monotonic() - started:.3f}"}
            )


def _prepared(session: psycopg.Connection[Any], params: list[Any]) -> list[tuple[Any, ...]]:
    # A cursor that sends the values apart from the query, which Django's cannot.
    with psycopg.Cursor(session) as cursor:
        return cursor.execute(_LOOKUP_SQL, params, prepare=True).fetchall()


def _lookup_from_database(code: str) -> list[Any] | None:
    """The lookup read from the database in the cached form (`cached_form`); None when no
    active customer has the code."""
    rows = _lookup_rows(code)
    return cached_form(rows) if rows else None


def cached_form(rows: list[tuple[Any, ...]]) -> list[Any]:
    """The lookup's rows (`_LOOKUP_SQL`, at least one) as a compact JSON list: code, masked name
    and address, area code and name, then each bill as [id, number, ISO period, kWh, amount,
    ISO due date, status]. The pages cache it as it is; the API's body is built from it
    (`lookup_api_body`) without a dataclass per bill (measured: the objects cost the API more
    than its query)."""
    code, name, address, area_code, area_name = rows[0][:5]
    return [
        code,
        mask_name(name),
        mask_address(address),
        area_code,
        area_name,
        [
            [
                bill_id,
                number,
                _as_date(period).isoformat(),
                kwh,
                amount,
                _as_date(due_date).isoformat(),
                status,
            ]
            for *_, bill_id, number, period, kwh, amount, due_date, status in rows
            if bill_id is not None
        ],
    ]


_BILL_TYPES = (int, str, str, int, int, str, str)


def _readable(data: Any) -> bool:
    """Whether a cached value has the form `_lookup_from_database` writes (an old or damaged
    entry's might not; it is then read again from the database)."""
    return (
        isinstance(data, list)
        and len(data) == 6
        and all(isinstance(value, str) for value in data[:5])
        and isinstance(data[5], list)
        and all(
            isinstance(bill, list)
            and len(bill) == 7
            and all(map(isinstance, bill, _BILL_TYPES))
            and _is_iso_date(bill[2])
            and _is_iso_date(bill[5])
            for bill in data[5]
        )
    )


def _is_iso_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _cache_set(key: str, data: list[Any]) -> None:
    with outage_tolerated("the bills of %s not cached", key):
        fastcache.set_json(key, data, settings.LOOKUP_CACHE_SECONDS)


NOT_READ: Any = object()


def customer_bills_data(*, code: str, cached: Any = NOT_READ) -> list[Any] | None:
    """The public lookup by a normalised, validated code, in the cached form
    (`_lookup_from_database`); None when no active customer has it.

    Served from the cache when fresh, otherwise one query. `cached` is what the cache holds
    under `bills_cache_key(code)` when the caller read it already (the pages read it in the
    same Redis round trip as the client's rate limit); by default it is read here.
    """
    key = bills_cache_key(code)
    if cached is NOT_READ:
        cached = None
        with outage_tolerated("the bills of %s read from the database", key):
            cached = fastcache.get_json(key)
    if cached is not None:
        if _readable(cached):
            return cached  # type: ignore[no-any-return]
        logger.warning("cached lookup unreadable for %s", key)
    result = _lookup_from_database(code)
    if result is not None:  # an unknown code is not cached: a new customer is found at once
        _cache_set(key, result)
    return result


def customer_bills_lookup(*, code: str, cached: Any = NOT_READ) -> CustomerBills | None:
    """`customer_bills_data` as a `CustomerBills`, for the pages that show it."""
    data = customer_bills_data(code=code, cached=cached)
    return None if data is None else CustomerBills.from_cache(data)


# What a cached answer of the API starts with; anything else there (an entry of an older form, a
# damaged one) is answered again from the database.
_API_ANSWER_START = b'{"customer":{'


def lookup_api_answer(*, code: str, cached: bytes | None) -> bytes | None:
    """The lookup API's answer (the contract's JSON, as bytes) for a normalised, validated code;
    None when no active customer has it. `cached` is what the cache holds under
    `api_cache_key(code)`, read by the caller in the same Redis round trip as the client's
    rate limit: the answer is kept as it is sent, so a cached one costs no decoding."""
    if cached is not None:
        if isinstance(cached, bytes) and cached.startswith(_API_ANSWER_START):
            return cached
        logger.warning("cached lookup unreadable for %s", api_cache_key(code))
    rows = _lookup_rows(code)
    if not rows:  # an unknown code is not cached: a new customer is found at once
        return None
    body = lookup_api_body(cached_form(rows))
    answer = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    with outage_tolerated("the API's answer for %s not cached", code):
        fastcache.set_bytes(api_cache_key(code), answer, settings.LOOKUP_CACHE_SECONDS)
    return answer


def lookup_api_body(data: list[Any]) -> dict[str, Any]:
    """The contract's JSON of the lookup API (customers.api.serializers documents the same),
    from the cached form (`cached_form`)."""
    code, name, address, area_code, area_name, bills = data
    return {
        "customer": {
            "code": code,
            "name": name,
            "address": address,
            "service_area": {"code": area_code, "name": area_name},
        },
        "bills": [
            {
                "number": number,
                "period": period[:7],  # ISO 'YYYY-MM-DD' to the contract's 'YYYY-MM'
                "kwh": kwh,
                "amount": amount,
                "due_date": due_date,
                "status": status,
            }
            for _id, number, period, kwh, amount, due_date, status in bills
        ],
        "total_due": total_due((bill[4], bill[6]) for bill in bills),
    }
