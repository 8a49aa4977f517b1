"""Load the utility's monthly billing file (docs/interfaces.md, "Billing data file").

Every row is validated in Python (one set of rules for every database); rows that pass are then
loaded set-based. On PostgreSQL the rows are streamed with COPY into a temporary staging table and
checked against existing bills, then customers are upserted and bills inserted with one statement
each, so a 467,636-row monthly file loads in seconds. Elsewhere (SQLite, the embedded default) the
same steps run through the ORM in batches.

Rules: customers are created or updated by code; a bill is new by number; the same bill again
with the same values is skipped, with different values it is rejected (bills are never silently
rewritten); `service_area` is a name or a code, created when new. Without `strict`, good rows load
and bad rows are reported with their line numbers; with `strict`, nothing loads unless every row
is good. Re-running the same file changes nothing.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction
from django.utils import timezone

from customers.codes import customer_code_pattern, normalise
from customers.models import Bill, Customer, ServiceArea
from customers.selectors import bills_cache_forget
from portal.text import alnum_upper

COLUMNS = (
    "customer_code",
    "customer_name",
    "address",
    "service_area",
    "phone",
    "email",
    "bill_number",
    "period",
    "kwh",
    "amount",
    "due_date",
)

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WHOLE = re.compile(r"^\d{1,15}$")
_BILL_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9\-_/.]{0,31}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 .\-]{6,18}$")
_NOT_PHONE_CHAR = re.compile(r"[^\d+]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# Bigger than any household's month, small enough to catch a unit or column mix-up.
MAX_KWH = 10_000_000
MAX_AMOUNT = 10**13


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, header)."""


@dataclass(slots=True)
class BillRow:
    line: int
    customer_code: str
    customer_name: str
    address: str
    service_area: str
    phone: str
    email: str
    bill_number: str
    period: datetime.date
    kwh: int
    amount: int
    due_date: datetime.date
    area_id: int = 0


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


@dataclass
class ImportResult:
    rows: int = 0
    customers_created: int = 0
    customers_updated: int = 0
    bills_created: int = 0
    bills_skipped: int = 0
    areas_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    strict: bool = False
    loaded: bool = True

    @property
    def rejected(self) -> int:
        return len(self.errors)


# --- Reading and validating ---------------------------------------------------------------------
def _date(text: str) -> datetime.date | None:
    if not _DATE.match(text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def validate_row(
    line: int, values: list[str], code_pattern: re.Pattern[str] | None = None
) -> BillRow | RowError:
    """Check one row; the first problem found is its reason.

    Half a million rows a month go through here, so the common case is kept cheap: a code
    already in its printed form skips normalising, and dates parse in C.
    """
    if len(values) != len(COLUMNS):
        return RowError(line, f"expected {len(COLUMNS)} columns, found {len(values)}")
    code_raw, name, address, area, phone, email, number, period, kwh, amount, due = (
        value.strip() for value in values
    )
    pattern = code_pattern or customer_code_pattern()
    code = code_raw.upper()
    if not pattern.fullmatch(code):
        code = normalise(code_raw)
        if not pattern.fullmatch(code):
            return RowError(line, f"invalid customer code {code_raw!r}")
    if not name:
        return RowError(line, "customer name is empty")
    if len(name) > 200:
        return RowError(line, "customer name is longer than 200 characters")
    if len(address) > 300:
        return RowError(line, "address is longer than 300 characters")
    if not area:
        return RowError(line, "service area is empty")
    if len(area) > 100:
        return RowError(line, "service area is longer than 100 characters")
    if phone and not phone.isdigit():
        if not _PHONE.match(phone):
            return RowError(line, f"invalid phone {phone!r}")
        phone = _NOT_PHONE_CHAR.sub("", phone)
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        return RowError(line, f"invalid e-mail {email!r}")
    number = number.upper()
    if not _BILL_NUMBER.match(number):
        return RowError(line, f"invalid bill number {number!r}")
    period_match = _PERIOD.match(period)
    if not period_match:
        return RowError(line, f"period {period!r} is not YYYY-MM")
    period_start = datetime.date(int(period_match[1]), int(period_match[2]), 1)
    if not _WHOLE.match(kwh) or int(kwh) > MAX_KWH:
        return RowError(line, f"kwh {kwh!r} is not a whole non-negative number")
    if not _WHOLE.match(amount) or int(amount) >= MAX_AMOUNT:
        return RowError(line, f"amount {amount!r} is not a whole non-negative number of VND")
    due_date = _date(due)
    if due_date is None:
        return RowError(line, f"due date {due!r} is not a valid YYYY-MM-DD date")
    if due_date < period_start:
        return RowError(line, f"due date {due} is before the billing period {period}")
    return BillRow(
        line=line,
        customer_code=code,
        customer_name=name,
        address=address,
        service_area=area,
        phone=phone,
        email=email.lower(),
        bill_number=number,
        period=period_start,
        kwh=int(kwh),
        amount=int(amount),
        due_date=due_date,
    )


def search_text_of(row: BillRow) -> str:
    """Folded for search; computed only for customers that are created or changed."""
    return Customer.build_search_text(
        code=row.customer_code, name=row.customer_name, phone=row.phone, address=row.address
    )


def read_rows(stream: IO[str]) -> Iterator[BillRow | RowError]:
    """Validated rows of a billing file, with duplicates inside the file rejected."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 ({exc.reason})") from None
    header = [name.strip().lstrip("\ufeff").lower() for name in header]
    if tuple(header) != COLUMNS:
        raise ImportFileError(
            "the header must be exactly: " + ",".join(COLUMNS) + f" (found: {','.join(header)})"
        )
    pattern = customer_code_pattern()
    seen_numbers: dict[str, int] = {}
    seen_periods: dict[tuple[str, datetime.date], int] = {}
    line = 1
    try:
        for values in reader:
            line = reader.line_num
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # blank line
            row = validate_row(line, values, pattern)
            if isinstance(row, BillRow):
                first = seen_numbers.get(row.bill_number)
                if first is not None:
                    row = RowError(line, f"bill number {row.bill_number} repeats line {first}")
                else:
                    key = (row.customer_code, row.period)
                    first = seen_periods.get(key)
                    if first is not None:
                        row = RowError(
                            line,
                            f"customer {row.customer_code} already has a bill for "
                            f"{row.period:%Y-%m} on line {first}",
                        )
                    else:
                        seen_numbers[row.bill_number] = line
                        seen_periods[key] = line
            yield row
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"line {line + 1}: not UTF-8 ({exc.reason})") from None
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: {exc}") from None


# --- Service areas ------------------------------------------------------------------------------
def _known_areas() -> dict[str, int]:
    """Existing service areas by code and by name, case-folded."""
    known: dict[str, int] = {}
    for area in ServiceArea.objects.all():
        known[area.code.casefold()] = area.pk
        known[area.name.casefold()] = area.pk
    return known


def _create_area(value: str, known: dict[str, int]) -> int:
    """A service area named in the file but unknown here: created, with a code made from it."""
    base = alnum_upper(value)[:14] or "AREA"
    code, suffix = base, 1
    while code.casefold() in known:
        suffix += 1
        code = f"{base[:12]}{suffix:02d}"
    area = ServiceArea.objects.create(code=code, name=value)
    known[value.casefold()] = known[code.casefold()] = area.pk
    return area.pk


# --- Loading ------------------------------------------------------------------------------------
Progress = Callable[[int], None]


def import_bills(
    source: str | Path | IO[str],
    *,
    strict: bool = False,
    progress: Progress | None = None,
    fast_path: bool | None = None,
) -> ImportResult:
    """Validate and load a billing file. See the module docstring for the rules.

    `fast_path` chooses the COPY loader (default: on PostgreSQL) or the ORM loader.
    """
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8", newline="") as stream:
            return import_bills(stream, strict=strict, progress=progress, fast_path=fast_path)
    if fast_path is None:
        fast_path = connection.vendor == "postgresql"
    result = ImportResult(strict=strict)
    codes: set[str] = set()
    rows = _validated(source, result, progress, codes)
    with transaction.atomic():
        if fast_path:
            _load_postgres(rows, result, strict=strict)
        else:
            _load_orm(list(rows), result, strict=strict)
        if strict and result.errors:
            transaction.set_rollback(True)
            result.loaded = False
            result.customers_created = result.customers_updated = result.bills_created = 0
            result.areas_created = result.bills_skipped = 0
    result.errors.sort(key=lambda error: error.line)
    if result.loaded and (result.bills_created or result.customers_updated):
        transaction.on_commit(lambda: bills_cache_forget(customer_codes=codes))
    return result


def _validated(
    source: IO[str], result: ImportResult, progress: Progress | None, codes: set[str]
) -> Iterator[BillRow]:
    """The rows that pass validation; counts every row and keeps the errors in `result`."""
    for item in read_rows(source):
        result.rows += 1
        if progress and result.rows % 5000 == 0:
            progress(5000)
        if isinstance(item, RowError):
            result.errors.append(item)
        else:
            codes.add(item.customer_code)
            yield item
    if progress:
        progress(result.rows % 5000)


def _load_postgres(rows: Iterable[BillRow], result: ImportResult, *, strict: bool) -> None:
    """Stream the rows into a staging table while they are validated, then check and load them
    with a handful of set-based statements."""
    now = timezone.now()
    areas = _known_areas()
    seen: set[str] = set()
    repeated: set[str] = set()  # customers with more than one row in the file
    with connection.cursor() as cursor:
        # Dropped at commit, and here too: an import may run inside a longer transaction.
        cursor.execute("DROP TABLE IF EXISTS import_staging, import_lookup, import_search")
        cursor.execute(
            """
            CREATE TEMP TABLE import_staging (
                line integer, customer_code text, customer_name text, address text,
                phone text, email text, area_id bigint, area text, bill_number text,
                period date, kwh integer, amount bigint, due_date date,
                is_last boolean DEFAULT true
            ) ON COMMIT DROP
            """
        )
        copy_sql = (
            "COPY import_staging (line, customer_code, customer_name, address, phone, email, "
            "area_id, area, bill_number, period, kwh, amount, due_date) FROM STDIN"
        )
        # PostgreSQL stores while Python reads and validates: the two run side by side.
        with cursor.cursor.copy(copy_sql) as copy:
            for row in rows:
                if row.customer_code in seen:
                    repeated.add(row.customer_code)
                seen.add(row.customer_code)
                area_id = areas.get(row.service_area.casefold())
                copy.write_row(
                    (
                        row.line,
                        row.customer_code,
                        row.customer_name,
                        row.address,
                        row.phone,
                        row.email,
                        area_id,
                        None if area_id else row.service_area,
                        row.bill_number,
                        row.period,
                        row.kwh,
                        row.amount,
                        row.due_date,
                    )
                )
        if strict and result.errors:
            return
        cursor.execute("SELECT DISTINCT area FROM import_staging WHERE area_id IS NULL")
        for (value,) in cursor.fetchall():
            if value.casefold() not in areas:
                result.areas_created += 1
                _create_area(value, areas)
            cursor.execute(
                "UPDATE import_staging SET area_id = %s WHERE area_id IS NULL AND area = %s",
                [areas[value.casefold()], value],
            )
        cursor.execute("ANALYZE import_staging")
        # One pass of index probes tells, for every row, its customer (and whether the file
        # changes it), whether its bill number exists (and with which values) and whether its
        # customer already has another bill for the month. The planner, which cannot know that
        # most rows match nothing, would hash the whole 5.6-million-row bills table instead:
        # nested loops of index probes are far cheaper here.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_mergejoin = off")
        cursor.execute(
            """
            CREATE TEMP TABLE import_lookup ON COMMIT DROP AS
            SELECT s.line, c.id AS customer_id,
                   c.id IS NOT NULL
                       AND (c.name, c.address, c.phone, c.email, c.service_area_id)
                       IS DISTINCT FROM (s.customer_name, s.address, s.phone, s.email, s.area_id)
                       AS customer_changed,
                   b.id IS NOT NULL AS bill_exists,
                   b.id IS NOT NULL AND (b.customer_id, b.period, b.kwh, b.amount, b.due_date)
                       IS DISTINCT FROM (c.id, s.period, s.kwh, s.amount, s.due_date)
                       AS bill_differs,
                   b.customer_id AS bill_customer_id, b.period AS bill_period,
                   b.kwh AS bill_kwh, b.amount AS bill_amount, b.due_date AS bill_due_date,
                   o.number AS other_number,
                   -- loaded: not contradicting any bill the database already has
                   (b.id IS NULL OR (b.customer_id, b.period, b.kwh, b.amount, b.due_date)
                       IS NOT DISTINCT FROM (c.id, s.period, s.kwh, s.amount, s.due_date))
                   AND o.number IS NULL AS ok
            FROM import_staging s
            LEFT JOIN customers_customer c ON c.code = s.customer_code
            LEFT JOIN customers_bill b ON b.number = s.bill_number
            LEFT JOIN customers_bill o
                   ON o.customer_id = c.id AND o.period = s.period AND o.number <> s.bill_number
            """
        )
        cursor.execute("RESET enable_hashjoin")
        cursor.execute("RESET enable_mergejoin")
        cursor.execute(
            """
            SELECT l.line, s.bill_number, bc.code, l.bill_period, l.bill_kwh, l.bill_amount,
                   l.bill_due_date
            FROM import_lookup l JOIN import_staging s ON s.line = l.line
            JOIN customers_customer bc ON bc.id = l.bill_customer_id
            WHERE l.bill_differs
            """
        )
        conflicts = [
            RowError(line, _changed_bill_reason(number, code, period, kwh, amount, due))
            for line, number, code, period, kwh, amount, due in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT l.line, s.customer_code, s.period, l.other_number
            FROM import_lookup l JOIN import_staging s ON s.line = l.line
            WHERE l.other_number IS NOT NULL AND NOT l.bill_differs
            """
        )
        conflicts += [
            RowError(line, f"customer {code} already has bill {other} for {period:%Y-%m}")
            for line, code, period, other in cursor.fetchall()
        ]
        result.errors.extend(conflicts)
        if strict and conflicts:
            return
        if repeated:
            # A customer's details come from its last row that loads, as on the ORM path: a
            # later row refused for its bill must not hide an earlier row's new address.
            cursor.execute(
                """
                UPDATE import_staging s SET is_last = false
                FROM (SELECT s2.customer_code, max(s2.line) AS line
                      FROM import_staging s2 JOIN import_lookup l ON l.line = s2.line
                      WHERE l.ok AND s2.customer_code = ANY(%s) GROUP BY s2.customer_code) m
                WHERE s.customer_code = m.customer_code AND s.line <> m.line
                """,
                [sorted(repeated)],
            )
        cursor.execute("SELECT count(*) FROM import_lookup l WHERE l.bill_exists AND l.ok")
        result.bills_skipped = cursor.fetchone()[0]
        # Folded search text only for the customers this file creates or changes: in a monthly
        # file that is a few hundred, not half a million.
        cursor.execute(
            """
            SELECT s.line, s.customer_code, s.customer_name, s.phone, s.address
            FROM import_staging s JOIN import_lookup l ON l.line = s.line
            WHERE l.ok AND (l.customer_id IS NULL OR (s.is_last AND l.customer_changed))
            """
        )
        searched = cursor.fetchall()
        cursor.execute(
            "CREATE TEMP TABLE import_search (line integer, search_text text) ON COMMIT DROP"
        )
        with cursor.cursor.copy("COPY import_search (line, search_text) FROM STDIN") as copy:
            for line, code, name, phone, address in searched:
                text = Customer.build_search_text(
                    code=code, name=name, phone=phone, address=address
                )
                copy.write_row((line, text))
        # New customers; the last loaded row of a code wins.
        cursor.execute(
            """
            INSERT INTO customers_customer
                (code, name, address, phone, email, service_area_id, is_active, search_text,
                 created_at, updated_at)
            SELECT DISTINCT ON (s.customer_code)
                s.customer_code, s.customer_name, s.address, s.phone, s.email, s.area_id, true,
                t.search_text, %s, %s
            FROM import_staging s
            JOIN import_lookup l ON l.line = s.line
            JOIN import_search t ON t.line = s.line
            WHERE l.customer_id IS NULL AND l.ok
            ORDER BY s.customer_code, s.line DESC
            ON CONFLICT (code) DO NOTHING
            """,
            [now, now],
        )
        result.customers_created = cursor.rowcount
        if result.customers_created:
            cursor.execute(
                """
                UPDATE import_lookup l SET customer_id = c.id
                FROM import_staging s, customers_customer c
                WHERE l.customer_id IS NULL AND s.line = l.line AND c.code = s.customer_code
                """
            )
        # Known customers whose details the file changes; the others are not touched.
        cursor.execute(
            """
            UPDATE customers_customer c SET
                name = s.customer_name, address = s.address, phone = s.phone, email = s.email,
                service_area_id = s.area_id, search_text = t.search_text, updated_at = %s
            FROM import_staging s
            JOIN import_lookup l ON l.line = s.line
            JOIN import_search t ON t.line = s.line
            WHERE c.id = l.customer_id AND s.is_last AND l.ok AND l.customer_changed
            """,
            [now],
        )
        result.customers_updated = cursor.rowcount
        # New bills, in customer order: the (customer, period) index is then filled in order.
        # No ON CONFLICT: the lookup above, in this transaction, found none of them, and the
        # unique constraints still refuse (loudly) a second import of the same file racing it.
        cursor.execute(
            """
            INSERT INTO customers_bill
                (number, customer_id, period, kwh, amount, due_date, issued_at, status)
            SELECT s.bill_number, l.customer_id, s.period, s.kwh, s.amount, s.due_date, %s,
                   'unpaid'
            FROM import_staging s JOIN import_lookup l ON l.line = s.line
            WHERE NOT l.bill_exists AND l.ok
            ORDER BY l.customer_id
            """,
            [now],
        )
        result.bills_created = cursor.rowcount
        cursor.execute("DROP TABLE import_staging, import_lookup, import_search")


def _changed_bill_reason(
    number: str,
    code: str,
    period: datetime.date,
    kwh: int,
    amount: int,
    due: datetime.date,
) -> str:
    return (
        f"bill {number} already exists with different values "
        f"(customer {code}, period {period:%Y-%m}, {kwh} kWh, {amount} VND, due {due})"
    )


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _load_orm(rows: list[BillRow], result: ImportResult, *, strict: bool) -> None:
    """The same load through the ORM, in batches, for databases other than PostgreSQL."""
    if strict and result.errors:
        return
    areas = _known_areas()
    for row in rows:
        area_id = areas.get(row.service_area.casefold())
        if area_id is None:
            area_id = _create_area(row.service_area, areas)
            result.areas_created += 1
        row.area_id = area_id
    existing: dict[str, tuple[str, datetime.date, int, int, datetime.date]] = {}
    for chunk in _chunks([row.bill_number for row in rows]):
        for bill in Bill.objects.filter(number__in=chunk).select_related("customer"):
            existing[bill.number] = (
                bill.customer.code,
                bill.period,
                bill.kwh,
                bill.amount,
                bill.due_date,
            )
    customers: dict[str, Customer] = {}
    for chunk in _chunks(sorted({row.customer_code for row in rows})):
        customers.update({c.code: c for c in Customer.objects.filter(code__in=chunk)})
    taken_periods: dict[tuple[int, datetime.date], str] = {}
    for chunk in _chunks([c.pk for c in customers.values()]):
        for customer_id, period, number in Bill.objects.filter(customer_id__in=chunk).values_list(
            "customer_id", "period", "number"
        ):
            taken_periods[(customer_id, period)] = number
    conflicts: list[RowError] = []
    good: list[BillRow] = []
    for row in rows:
        mine = (row.customer_code, row.period, row.kwh, row.amount, row.due_date)
        if row.bill_number in existing:
            if existing[row.bill_number] != mine:
                conflicts.append(
                    RowError(
                        row.line, _changed_bill_reason(row.bill_number, *existing[row.bill_number])
                    )
                )
                continue
        else:
            customer = customers.get(row.customer_code)
            other = taken_periods.get((customer.pk, row.period)) if customer else None
            if other is not None:
                conflicts.append(
                    RowError(
                        row.line,
                        f"customer {row.customer_code} already has bill {other} "
                        f"for {row.period:%Y-%m}",
                    )
                )
                continue
        good.append(row)
    result.errors.extend(conflicts)
    if strict and conflicts:
        return
    result.bills_skipped = sum(1 for row in good if row.bill_number in existing)
    latest: dict[str, BillRow] = {}
    for row in good:
        latest[row.customer_code] = row
    fields = ("name", "address", "phone", "email", "service_area_id", "search_text")
    new_customers, changed = [], []
    for code, row in latest.items():
        values = (
            row.customer_name,
            row.address,
            row.phone,
            row.email,
            row.area_id,
            search_text_of(row),
        )
        customer = customers.get(code)
        if customer is None:
            new_customers.append(Customer(code=code, **dict(zip(fields, values, strict=True))))
        elif tuple(getattr(customer, name) for name in fields[:5]) != values[:5]:
            for name, value in zip(fields, values, strict=True):
                setattr(customer, name, value)
            changed.append(customer)
    Customer.objects.bulk_create(new_customers, batch_size=500)
    Customer.objects.bulk_update(changed, [*fields, "updated_at"], batch_size=500)
    result.customers_created, result.customers_updated = len(new_customers), len(changed)
    ids = {c.code: c.pk for c in new_customers}
    ids.update({code: c.pk for code, c in customers.items()})
    if any(pk is None for pk in ids.values()):  # backends that do not return ids on insert
        for chunk in _chunks([code for code, pk in ids.items() if pk is None]):
            ids.update(dict(Customer.objects.filter(code__in=chunk).values_list("code", "id")))
    now = timezone.now()
    new_bills = [
        Bill(
            number=row.bill_number,
            customer_id=ids[row.customer_code],
            period=row.period,
            kwh=row.kwh,
            amount=row.amount,
            due_date=row.due_date,
            issued_at=now,
        )
        for row in good
        if row.bill_number not in existing
    ]
    Bill.objects.bulk_create(new_bills, batch_size=500)
    result.bills_created = len(new_bills)


def rows_to_csv(rows: Iterable[Iterable[Any]]) -> str:
    """A billing file's text from rows of values (used by tests and the demo generator)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()
