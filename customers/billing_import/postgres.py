"""The set-based loader for PostgreSQL: the file goes into a staging table as it is (its values
stripped of blanks), every rule is a SQL pass over it, and the good rows go into customers_bill with
one INSERT.

The file is read a chunk at a time by a thread of its own (`common.read_ahead`): while Python
splits the next chunk into fields, PostgreSQL stores and checks this one, so the two use both
cores. The SQL mirrors `rules.validate_row` rule by rule, in the same order; the messages are
formatted from the same table (`rules.REASONS`), so both loaders report a bad line in the same
words.

Conflicts with the bills already there are found by the INSERT itself (the two unique indexes,
which it must probe anyway, refuse it): when every good row went in, which is the monthly case,
nothing more is asked of the database. Only when some did not are those rows looked up, to tell
"already loaded" from "already exists with different values".
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from common.read_ahead import quick_handoffs, read_ahead
from customers.billing_import import rules
from customers.billing_import.areas import area_ids, known_areas
from customers.billing_import.result import ImportResult
from customers.billing_import.rules import RowError, row_error
from customers.models import Customer

_STAGE = """
CREATE TEMP TABLE import_raw (
    line integer, code_raw text, name text, address text, area text, phone_raw text,
    email_raw text, number_raw text, period_text text, kwh text, amount text, due text,
    area_id bigint
) ON COMMIT DROP
"""

# Run on each chunk of the file as it arrives. Every value of a row is computed once, in the
# fenced subquery `v` (OFFSET 0), and the rule ladder above it (fenced too) only compares what `v`
# computed. Each good row also carries its customer (id, and whether the file describes them as
# they are), found by the code's index, so that nothing later joins the file with the customers.
_CHECK = """
SELECT line, rule, code, name, address, area, phone, email, number, period_text,
       CASE rule WHEN 'code' THEN code_raw WHEN 'phone' THEN phone_raw WHEN 'email' THEN email_raw
           WHEN 'number' THEN number_raw WHEN 'period' THEN period_text WHEN 'kwh' THEN kwh
           WHEN 'amount' THEN amount WHEN 'due' THEN due WHEN 'due_before' THEN due END AS detail,
       CASE WHEN rule IS NULL THEN period_start END AS period,
       CASE WHEN rule IS NULL THEN kwh_value::integer END AS kwh,
       CASE WHEN rule IS NULL THEN amount_value::bigint END AS amount,
       CASE WHEN rule IS NULL THEN due_date END AS due_date,
       customer_id, area_id, described,
       NULL::integer AS first_line, false AS skipped
FROM (
    SELECT v.*, c.id AS customer_id,
        c.id IS NOT NULL AND v.area_id IS NOT NULL
            AND (c.name, c.address, c.phone, c.email, c.service_area_id)
                IS NOT DISTINCT FROM (v.name, v.address, v.phone, v.email, v.area_id) AS described,
        CASE
        WHEN v.code IS NULL THEN 'code'
        WHEN v.name = '' THEN 'name_empty'
        WHEN length(v.name) > %(max_name)s THEN 'name_long'
        WHEN length(v.address) > %(max_address)s THEN 'address_long'
        WHEN v.area = '' THEN 'area_empty'
        WHEN length(v.area) > %(max_area)s THEN 'area_long'
        WHEN v.phone IS NULL THEN 'phone'
        WHEN NOT email_ok THEN 'email'
        WHEN NOT number_ok THEN 'number'
        WHEN period_start IS NULL THEN 'period'
        WHEN kwh_value IS NULL OR kwh_value > %(max_kwh)s THEN 'kwh'
        WHEN amount_value IS NULL OR amount_value >= %(max_amount)s THEN 'amount'
        WHEN NOT due_ok THEN 'due'
        WHEN left(due, 7) < period_text THEN 'due_before'
    END AS rule
    FROM (
        SELECT s.*,
            CASE WHEN upper(code_raw) ~ %(code)s THEN upper(code_raw)
                 WHEN upper(regexp_replace(normalize(code_raw, NFKC), '[\\s.-]+', '', 'g'))
                      ~ %(code)s
                 THEN upper(regexp_replace(normalize(code_raw, NFKC), '[\\s.-]+', '', 'g'))
            END AS code,
            CASE WHEN phone_raw = ''
                      OR (length(phone_raw) <= %(max_phone)s AND phone_raw ~ %(digits)s)
                 THEN phone_raw
                 WHEN phone_raw ~ %(phone)s THEN regexp_replace(phone_raw, %(not_phone)s, '', 'g')
            END AS phone,
            lower(email_raw) AS email,
            email_raw = '' OR NOT (length(email_raw) > %(max_email)s OR email_raw !~ %(email)s
                OR length(split_part(email_raw, '@', 1)) > %(max_email_local)s) AS email_ok,
            upper(number_raw) AS number,
            length(number_raw) <= %(max_bill_number)s
                AND upper(number_raw) ~ %(bill_number)s AS number_ok,
            -- At most 15 digits: a bigint holds them.
            CASE WHEN length(kwh) <= %(max_digits)s AND kwh ~ %(digits)s THEN kwh::bigint END
                AS kwh_value,
            CASE WHEN length(amount) <= %(max_digits)s AND amount ~ %(digits)s
                 THEN amount::bigint END AS amount_value,
            p.period_start, d.due_ok, d.due_date
        FROM import_raw s
        -- A file has few distinct months and due dates: each is checked once.
        JOIN (
            SELECT period_text,
                CASE WHEN period_text ~ %(period)s AND left(period_text, 4) <> '0000'
                     THEN (period_text || '-01')::date
                END AS period_start
            FROM (SELECT DISTINCT period_text FROM import_raw) x OFFSET 0
        ) p USING (period_text)
        JOIN (
            SELECT due, due_ok, CASE WHEN due_ok THEN due::date END AS due_date
            FROM (
                -- Dates compared as text (ISO dates sort as they read), with no date arithmetic.
                SELECT due, CASE WHEN due !~ %(date)s OR left(due, 4) = '0000' THEN false
                    ELSE substr(due, 6, 2) BETWEEN '01' AND '12' AND right(due, 2) BETWEEN '01' AND
                        CASE WHEN substr(due, 6, 2) IN ('04', '06', '09', '11') THEN '30'
                             WHEN substr(due, 6, 2) <> '02' THEN '31'
                             WHEN left(due, 4)::integer %% 4 = 0
                                  AND (left(due, 4)::integer %% 100 <> 0
                                       OR left(due, 4)::integer %% 400 = 0) THEN '29'
                             ELSE '28' END
                    END AS due_ok
                FROM (SELECT DISTINCT due FROM import_raw) x
            ) x OFFSET 0
        ) d USING (due)
        OFFSET 0
    ) v
    -- One index probe per row: a hash of every customer for each chunk would cost more.
    LEFT JOIN LATERAL (
        SELECT id, name, address, phone, email, service_area_id
        FROM customers_customer WHERE code = v.code OFFSET 0
    ) c ON true
    OFFSET 0
) r
"""

# A row repeating an earlier valid row's bill number, or its customer and month, is refused.
_REPEATS = """
UPDATE import_rows r
SET rule = CASE WHEN w.number_first < w.line THEN 'number_repeats' ELSE 'period_repeats' END,
    first_line = CASE WHEN w.number_first < w.line THEN w.number_first ELSE w.month_first END
FROM (
    SELECT line, min(line) OVER (PARTITION BY number) AS number_first,
           min(line) OVER (PARTITION BY code, period) AS month_first
    FROM import_rows WHERE rule IS NULL
) w
WHERE r.line = w.line AND (w.number_first < w.line OR w.month_first < w.line)
RETURNING r.line, r.rule, r.detail, r.code, r.number, to_char(r.period, 'YYYY-MM'),
    r.period_text, r.first_line
"""

_ERRORS = """
SELECT line, rule, detail, code, number, to_char(period, 'YYYY-MM'), period_text, first_line
FROM import_rows WHERE rule IS NOT NULL
"""

# A customer's details come from their last row that loads. Only customers the file creates or
# describes differently are read (in a monthly file a few hundred, not half a million): each one's
# last good row, by default for every customer a row does not describe, or for the codes given.
_LAST_ROWS = """
SELECT DISTINCT ON (code) code, name, address, phone, email, area_id, customer_id, described
FROM import_rows WHERE rule IS NULL AND code IN ({codes})
ORDER BY code, line DESC
"""
_UNDESCRIBED = "SELECT code FROM import_rows WHERE rule IS NULL AND NOT described"

_CREATED_IDS = """
UPDATE import_rows s SET customer_id = c.id
FROM customers_customer c
WHERE c.code = ANY(%s) AND s.code = c.code AND s.customer_id IS NULL
"""

_NEW_CUSTOMERS = """
INSERT INTO customers_customer
    (code, name, address, phone, email, service_area_id, search_text, is_active, created_at,
     updated_at)
SELECT u.*, true, %s, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[]) u
ON CONFLICT (code) DO NOTHING
"""

_CHANGED_CUSTOMERS = """
UPDATE customers_customer c SET name = u.name, address = u.address, phone = u.phone,
    email = u.email, service_area_id = u.area_id, search_text = u.search_text, updated_at = %s
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[])
    AS u(id, name, address, phone, email, area_id, search_text)
WHERE c.id = u.id
RETURNING c.created_at
"""

# No conflict check first: the unique indexes on the number and on (customer, month), which any
# insert probes, refuse the whole statement if a row meets a bill already there (or another row).
_BILLS = """
INSERT INTO customers_bill (number, customer_id, period, kwh, amount, due_date, issued_at, status)
SELECT number, customer_id, period, kwh, amount, due_date, %s, 'unpaid'
FROM import_rows WHERE rule IS NULL AND NOT skipped
"""

# The good rows that meet a bill already there, each with that bill.
_CONFLICTS = """
SELECT s.line, s.number, s.code, to_char(s.period, 'YYYY-MM'), b.id IS NOT NULL,
       (b.customer_id, b.period, b.kwh, b.amount, b.due_date)
           IS NOT DISTINCT FROM (s.customer_id, s.period, s.kwh, s.amount, s.due_date),
       bc.code, to_char(b.period, 'YYYY-MM'), b.kwh, b.amount, b.due_date, o.number
FROM import_rows s
LEFT JOIN customers_bill b ON b.number = s.number
LEFT JOIN customers_customer bc ON bc.id = b.customer_id
LEFT JOIN customers_bill o
    ON o.customer_id = s.customer_id AND o.period = s.period AND o.number <> s.number
WHERE s.rule IS NULL AND (b.id IS NOT NULL OR o.id IS NOT NULL)
"""


def _check_parameters() -> dict[str, Any]:
    return {
        "code": f"^(?:{settings.CUSTOMER_CODE_PATTERN})$",
        "digits": rules.DIGITS,
        "phone": rules.PHONE,
        "not_phone": rules.NOT_PHONE_CHAR,
        "email": rules.EMAIL,
        "bill_number": rules.BILL_NUMBER,
        "period": rules.PERIOD,
        "date": rules.DATE,
        "max_digits": rules.MAX_DIGITS,
        "max_bill_number": rules.MAX_BILL_NUMBER,
        "max_email_local": rules.MAX_EMAIL_LOCAL,
        "max_kwh": rules.MAX_KWH,
        "max_amount": rules.MAX_AMOUNT,
        "max_name": rules.MAX_NAME,
        "max_address": rules.MAX_ADDRESS,
        "max_area": rules.MAX_AREA,
        "max_email": rules.MAX_EMAIL,
        "max_phone": rules.MAX_PHONE,
    }


def _reason(
    line: int,
    rule: str,
    detail: str,
    code: str,
    number: str,
    month: str,
    period_text: str,
    first: int,
) -> RowError:
    if rule == "number_repeats":
        return row_error(line, rule, value=number, first=first)
    if rule == "period_repeats":
        return row_error(line, rule, code=code, period=month, first=first)
    return row_error(line, rule, value=detail, period=period_text)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"  # COPY's NULL
# Rows checked per statement: enough that a statement's cost is the rows', few enough that Python
# reads the next chunk while PostgreSQL checks this one.
_CHUNK_ROWS = 25_000


def load(
    records: Iterable[tuple[int, list[str]]],
    result: ImportResult,
    *,
    strict: bool,
    now: datetime.datetime,
) -> None:
    areas = _AreaIds()
    parameters = _check_parameters()
    # jit: compiling each chunk's check (about 25 ms a statement) costs more than it saves.
    with connection.cursor() as cursor, _settings(cursor, work_mem="256MB", jit="off"):
        # Dropped at commit, and here too: an import may run inside a longer transaction.
        cursor.execute("DROP TABLE IF EXISTS import_raw, import_rows")
        cursor.execute(_STAGE)
        cursor.execute(
            f"CREATE TEMP TABLE import_rows ON COMMIT DROP AS {_CHECK} WITH NO DATA", parameters
        )
        # closing(): the reading thread stops however the loop ends. quick_handoffs: this
        # thread takes the interpreter lock back at once after each round trip.
        with quick_handoffs, closing(read_ahead(_copy_text(records, result, areas))) as chunks:
            for chunk in chunks:
                # FREEZE (allowed: the table was created or emptied in this same transaction)
                # spares the check the visibility bookkeeping of rows read once (a tenth of it).
                with cursor.cursor.copy("COPY import_raw FROM STDIN (FREEZE)") as copy:
                    copy.write(chunk)
                # One round trip: the main thread waits for the GIL after each (the reading
                # thread holds it), so fewer trips are fewer waits.
                cursor.execute(f"INSERT INTO import_rows {_CHECK}; TRUNCATE import_raw", parameters)
        cursor.execute(_ERRORS)
        result.errors.extend(_reason(*row) for row in cursor.fetchall())
        if strict and result.errors:
            return
        _new_areas(cursor, areas.unknown, result)
        changed = _new_and_changed_customers(cursor, result, now)
        try:
            with transaction.atomic():
                cursor.execute(_BILLS, [now])
        except IntegrityError:
            refused = _conflicts(cursor, result)
            if strict and refused:
                return
            _after_refusals(cursor, result, refused, now, changed)
            cursor.execute(_BILLS, [now])
        result.bills_created = cursor.rowcount
        if changed:
            _update_customers(cursor, changed, now, result)
        cursor.execute("DROP TABLE import_raw, import_rows")


@contextmanager
def _settings(cursor: Any, **values: str) -> Iterator[None]:
    """PostgreSQL's settings for the load, put back after it: a setting made for the
    transaction outlives the import's own atomic block when that is a savepoint in a longer
    transaction. After an error the savepoint's rollback puts them back."""
    names = list(values)
    cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
    before = cursor.fetchone()
    assignments = "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names))
    cursor.execute(assignments, [item for pair in values.items() for item in pair])
    yield
    cursor.execute(assignments, [item for pair in zip(names, before, strict=True) for item in pair])


class _AreaIds:
    """The known service area a value names, as the file spells it (looked up once per
    spelling); the spellings naming no known area are kept, to be created if a good row names
    them."""

    def __init__(self) -> None:
        self.known = known_areas()  # read here: the rows are formatted in another thread
        self.ids: dict[str, int | None] = {}
        self.unknown: set[str] = set()

    def __call__(self, value: str) -> int | None:
        try:
            return self.ids[value]
        except KeyError:
            found = self.ids[value] = self.known.get(value.casefold())
            if found is None:
                self.unknown.add(value)
            return found


def _copy_text(
    records: Iterable[tuple[int, list[str]]], result: ImportResult, areas: _AreaIds
) -> Iterator[str]:
    """The rows as COPY's text lines, a chunk at a time. Values are stripped of blanks here, as
    `rules.validate_row` strips them: in Python it costs a fraction of what PostgreSQL's btrim
    does with a multi-byte set of blanks."""
    columns = len(rules.COLUMNS)
    blanks = rules.BLANKS
    lines: list[str] = []
    for line, raw in records:
        if len(raw) != columns:
            result.errors.append(row_error(line, "columns", value=len(raw)))
            continue
        values = [value.strip(blanks) for value in raw]
        area_id = areas(values[3])
        text = "\t".join(values)
        # Escaping is needed only where a value holds a tab, line break or backslash.
        if text.count("\t") != columns - 1 or "\\" in text or "\n" in text or "\r" in text:
            text = "\t".join(value.translate(_COPY_ESCAPES) for value in values)
        lines.append(f"{line}\t{text}\t{_NULL if area_id is None else area_id}\n")
        if len(lines) == _CHUNK_ROWS:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def _new_areas(cursor: Any, unknown: set[str], result: ImportResult) -> None:
    """Service areas the file names for the first time are created when a good row names them."""
    if not unknown - {""}:
        return
    cursor.execute(
        "SELECT DISTINCT area FROM import_rows WHERE rule IS NULL AND area = ANY(%s)",
        [sorted(unknown)],
    )
    created = area_ids(sorted(area for (area,) in cursor.fetchall()), result)
    if created:
        cursor.execute(
            """
            UPDATE import_rows s SET area_id = a.id
            FROM unnest(%s::text[], %s::bigint[]) AS a(area, id)
            WHERE s.area = a.area AND s.rule IS NULL
            """,
            [list(created), list(created.values())],
        )


CustomerValues = tuple[str, str, str, str, int, str]  # name, address, phone, email, area, search


def _new_and_changed_customers(
    cursor: Any, result: ImportResult, now: datetime.datetime, only: list[str] | None = None
) -> dict[int, CustomerValues]:
    """Creates the customers the file brings; returns the changes to known ones, by id."""
    if only is None:
        cursor.execute(_LAST_ROWS.format(codes=_UNDESCRIBED))
    else:
        cursor.execute(_LAST_ROWS.format(codes="SELECT unnest(%s::text[])"), [only])
    new: list[tuple[Any, ...]] = []
    changed: dict[int, CustomerValues] = {}
    for code, name, address, phone, email, area_id, customer_id, described in cursor.fetchall():
        if described:
            continue
        search_text = Customer.build_search_text(code=code, name=name, phone=phone, address=address)
        if customer_id is None:
            new.append((code, name, address, phone, email, area_id, search_text))
        else:
            changed[customer_id] = (name, address, phone, email, area_id, search_text)
    if new:
        columns = (list(column) for column in zip(*new, strict=True))
        cursor.execute(_NEW_CUSTOMERS, [now, now, *columns])
        result.customers_created += cursor.rowcount
        cursor.execute(_CREATED_IDS, [[row[0] for row in new]])
    return changed


def _conflicts(cursor: Any, result: ImportResult) -> list[RowError]:
    """Why the INSERT was refused: rows repeating another row of the file, rows meeting a bill
    already there with other values (refused) or with the same ones (already loaded, skipped)."""
    cursor.execute(_REPEATS)
    refused = [_reason(*row) for row in cursor.fetchall()]
    # Index probes for the rows of the file, not a hash of the 5.6-million-row bills table.
    with _settings(cursor, enable_hashjoin="off", enable_mergejoin="off"):
        cursor.execute(_CONFLICTS)
        found = cursor.fetchall()
    skipped = []
    for line, number, code, month, exists, same, *bill, other in found:
        if exists and same:
            skipped.append(line)
        elif exists:
            bill_code, bill_month, kwh, amount, due = bill
            refused.append(
                row_error(
                    line,
                    "bill_changed",
                    value=number,
                    code=bill_code,
                    period=bill_month,
                    kwh=kwh,
                    amount=amount,
                    due=due,
                )
            )
        else:
            refused.append(row_error(line, "period_taken", value=other, code=code, period=month))
    if skipped:
        cursor.execute("UPDATE import_rows SET skipped = true WHERE line = ANY(%s)", [skipped])
    result.bills_skipped = len(skipped)
    result.errors.extend(refused)
    return refused


def _after_refusals(
    cursor: Any,
    result: ImportResult,
    refused: list[RowError],
    now: datetime.datetime,
    changed: dict[int, CustomerValues],
) -> None:
    """A refused row no longer describes its customer: a customer it created is removed again
    unless another row of theirs loads, and the details come from the last row that does."""
    cursor.execute(
        "UPDATE import_rows SET rule = coalesce(rule, 'refused') WHERE line = ANY(%s) "
        "RETURNING code",
        [[error.line for error in refused]],
    )
    codes = sorted({code for (code,) in cursor.fetchall()})
    if not codes:
        return
    cursor.execute(
        """
        DELETE FROM customers_customer c WHERE c.code = ANY(%s) AND c.created_at = %s
        AND NOT EXISTS (SELECT 1 FROM import_rows s WHERE s.code = c.code AND s.rule IS NULL)
        """,
        [codes, now],
    )
    result.customers_created -= cursor.rowcount
    cursor.execute("SELECT id FROM customers_customer WHERE code = ANY(%s)", [codes])
    for (customer_id,) in cursor.fetchall():
        changed.pop(customer_id, None)
    changed.update(_new_and_changed_customers(cursor, result, now, only=codes))


def _update_customers(
    cursor: Any, changed: dict[int, CustomerValues], now: datetime.datetime, result: ImportResult
) -> None:
    columns = list(zip(*((pk, *values) for pk, values in changed.items()), strict=True))
    cursor.execute(_CHANGED_CUSTOMERS, [now, *(list(column) for column in columns)])
    # A customer this file created, then described by an earlier row (its last one refused),
    # is a created one, as the row-by-row loader counts it.
    result.customers_updated = sum(1 for (created_at,) in cursor.fetchall() if created_at != now)
