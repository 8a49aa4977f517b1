"""The set-based loader for PostgreSQL: the file goes into a staging table as it is, every rule is
a SQL pass over it, and the good rows go into customers_bill with one INSERT.

Python only splits the CSV into fields and streams them with COPY (PostgreSQL stores while Python
reads, on the other core). The SQL below mirrors `rules.validate_row` rule by rule, in the same
order; the messages are formatted from the same table (`rules.REASONS`), so both loaders report a
bad line in the same words.

Conflicts with the bills already there are found by the INSERT itself (ON CONFLICT DO NOTHING on the
two unique indexes, which it must probe anyway): when every good row went in, which is the monthly
case, nothing more is asked of the database. Only when some did not are those rows looked up, to
tell "already loaded" from "already exists with different values".
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from customers.billing_import import rules
from customers.billing_import.areas import area_ids, unknown_areas
from customers.billing_import.result import ImportResult
from customers.billing_import.rules import RowError, row_error
from customers.models import Customer

_STAGE = """
CREATE TEMP TABLE import_raw (
    line integer, code text, name text, address text, area text, phone text, email text,
    number text, period text, kwh text, amount text, due text
) ON COMMIT DROP
"""

# Each level is fenced (OFFSET 0) so that PostgreSQL computes a value once, not once per use.
_CHECK = """
CREATE TEMP TABLE import_rows ON COMMIT DROP AS
SELECT line, rule, code, name, address, area, phone, email, number, period_text,
       CASE rule WHEN 'code' THEN code_raw WHEN 'phone' THEN phone_raw WHEN 'email' THEN email_raw
           WHEN 'number' THEN number_raw WHEN 'period' THEN period_text WHEN 'kwh' THEN kwh
           WHEN 'amount' THEN amount WHEN 'due' THEN due WHEN 'due_before' THEN due END AS detail,
       CASE WHEN rule IS NULL THEN period_start END AS period,
       CASE WHEN rule IS NULL THEN kwh::integer END AS kwh,
       CASE WHEN rule IS NULL THEN amount::bigint END AS amount,
       CASE WHEN rule IS NULL THEN due::date END AS due_date,
       NULL::integer AS first_line, false AS repeated, false AS superseded, false AS skipped
FROM (
    SELECT v.*, CASE
        WHEN code IS NULL THEN 'code'
        WHEN name = '' THEN 'name_empty'
        WHEN length(name) > %(max_name)s THEN 'name_long'
        WHEN length(address) > %(max_address)s THEN 'address_long'
        WHEN area = '' THEN 'area_empty'
        WHEN length(area) > %(max_area)s THEN 'area_long'
        WHEN phone IS NULL THEN 'phone'
        WHEN email_raw <> '' AND (length(email_raw) > %(max_email)s OR email_raw !~ %(email)s
            OR length(split_part(email_raw, '@', 1)) > %(max_email_local)s) THEN 'email'
        WHEN length(number) > %(max_bill_number)s OR number !~ %(bill_number)s THEN 'number'
        WHEN period_start IS NULL THEN 'period'
        WHEN CASE WHEN length(kwh) <= %(max_digits)s AND kwh ~ %(digits)s
                  THEN kwh::numeric > %(max_kwh)s ELSE true END THEN 'kwh'
        WHEN CASE WHEN length(amount) <= %(max_digits)s AND amount ~ %(digits)s
                  THEN amount::numeric >= %(max_amount)s ELSE true END THEN 'amount'
        WHEN NOT due_ok THEN 'due'
        WHEN left(due, 7) < period_text THEN 'due_before'
    END AS rule
    FROM (
        SELECT t.*,
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
            CASE WHEN email_raw <> '' THEN lower(email_raw) ELSE '' END AS email,
            CASE WHEN period_text ~ %(period)s AND left(period_text, 4) <> '0000'
                 THEN (period_text || '-01')::date
            END AS period_start,
            -- Dates compared as text (ISO dates sort as they read), with no date arithmetic.
            CASE WHEN due !~ %(date)s OR left(due, 4) = '0000' THEN false
                 ELSE substr(due, 6, 2) BETWEEN '01' AND '12' AND right(due, 2) BETWEEN '01' AND
                     CASE WHEN substr(due, 6, 2) IN ('04', '06', '09', '11') THEN '30'
                          WHEN substr(due, 6, 2) <> '02' THEN '31'
                          WHEN left(due, 4)::integer %% 4 = 0 AND (left(due, 4)::integer %% 100 <> 0
                               OR left(due, 4)::integer %% 400 = 0) THEN '29'
                          ELSE '28' END
            END AS due_ok
        FROM (
            SELECT line, btrim(code, %(blanks)s) AS code_raw, btrim(name, %(blanks)s) AS name,
                   btrim(address, %(blanks)s) AS address, btrim(area, %(blanks)s) AS area,
                   btrim(phone, %(blanks)s) AS phone_raw, btrim(email, %(blanks)s) AS email_raw,
                   btrim(number, %(blanks)s) AS number_raw,
                   upper(btrim(number, %(blanks)s)) AS number,
                   btrim(period, %(blanks)s) AS period_text, btrim(kwh, %(blanks)s) AS kwh,
                   btrim(amount, %(blanks)s) AS amount, btrim(due, %(blanks)s) AS due
            FROM import_raw OFFSET 0
        ) t OFFSET 0
    ) v OFFSET 0
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

# A customer on several rows is marked, so that its details come from its last row that loads.
_REPEATED = """
UPDATE import_rows SET repeated = true
WHERE rule IS NULL AND code IN (
    SELECT code FROM import_rows WHERE rule IS NULL GROUP BY code HAVING count(*) > 1)
"""

_SUPERSEDED = """
UPDATE import_rows r SET superseded = (r.line <> x.last)
FROM (SELECT code, max(line) AS last FROM import_rows WHERE repeated AND rule IS NULL
      GROUP BY code) x
WHERE r.repeated AND r.rule IS NULL AND r.code = x.code
"""

_ERRORS = """
SELECT line, rule, detail, code, number, to_char(period, 'YYYY-MM'), period_text, first_line
FROM import_rows WHERE rule IS NOT NULL
"""

# Customers the file creates or changes: in a monthly file a few hundred, not half a million.
_CUSTOMERS = """
SELECT s.code, s.name, s.address, s.phone, s.email, a.id, c.id
FROM import_rows s JOIN import_areas a ON a.area = s.area
LEFT JOIN customers_customer c ON c.code = s.code
WHERE s.rule IS NULL AND NOT s.superseded {only}
  AND (c.id IS NULL OR (c.name, c.address, c.phone, c.email, c.service_area_id)
       IS DISTINCT FROM (s.name, s.address, s.phone, s.email, a.id))
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
SELECT s.number, c.id, s.period, s.kwh, s.amount, s.due_date, %s, 'unpaid'
FROM import_rows s JOIN customers_customer c ON c.code = s.code
WHERE s.rule IS NULL AND NOT s.skipped
"""

# The good rows that meet a bill already there, each with that bill.
_CONFLICTS = """
SELECT s.line, s.number, s.code, to_char(s.period, 'YYYY-MM'), b.id IS NOT NULL,
       (b.customer_id, b.period, b.kwh, b.amount, b.due_date)
           IS NOT DISTINCT FROM (c.id, s.period, s.kwh, s.amount, s.due_date),
       bc.code, to_char(b.period, 'YYYY-MM'), b.kwh, b.amount, b.due_date, o.number
FROM import_rows s JOIN customers_customer c ON c.code = s.code
LEFT JOIN customers_bill b ON b.number = s.number
LEFT JOIN customers_customer bc ON bc.id = b.customer_id
LEFT JOIN customers_bill o ON o.customer_id = c.id AND o.period = s.period AND o.number <> s.number
WHERE s.rule IS NULL AND (b.id IS NOT NULL OR o.id IS NOT NULL)
"""


def _check_parameters() -> dict[str, Any]:
    return {
        "blanks": rules.BLANKS,
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


def load(
    records: Iterable[tuple[int, list[str]]],
    result: ImportResult,
    *,
    strict: bool,
    now: datetime.datetime,
) -> None:
    with connection.cursor() as cursor:
        # Dropped at commit, and here too: an import may run inside a longer transaction.
        cursor.execute("DROP TABLE IF EXISTS import_raw, import_rows, import_areas")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(_STAGE)
        named_areas: set[str] = set()
        with cursor.cursor.copy("COPY import_raw FROM STDIN") as copy:
            for line, values in records:
                if len(values) == len(rules.COLUMNS):
                    copy.write_row((line, *values))
                    named_areas.add(values[3])
                else:
                    result.errors.append(row_error(line, "columns", value=len(values)))
        cursor.execute(_CHECK, _check_parameters())
        cursor.execute(_ERRORS)
        result.errors.extend(_reason(*row) for row in cursor.fetchall())
        if strict and result.errors:
            return
        _areas(cursor, named_areas, result)
        cursor.execute(_REPEATED)
        repeated = bool(cursor.rowcount) and _mark_superseded(cursor)
        changed = _new_and_changed_customers(cursor, result, now)
        try:
            with transaction.atomic():
                cursor.execute(_BILLS, [now])
        except IntegrityError:
            refused = _conflicts(cursor, result)
            if strict and refused:
                return
            _after_refusals(cursor, result, refused, now, repeated, changed)
            cursor.execute(_BILLS, [now])
        result.bills_created = cursor.rowcount
        if changed:
            _update_customers(cursor, changed, now, result)
        cursor.execute("DROP TABLE import_raw, import_rows, import_areas")


def _areas(cursor: Any, named: set[str], result: ImportResult) -> None:
    """The service area of every good row, as a small table to join with."""
    trimmed = {value.strip(rules.BLANKS) for value in named} - {""}
    unknown = unknown_areas(trimmed)
    if unknown:  # created only when a good row names them
        cursor.execute(
            "SELECT DISTINCT area FROM import_rows WHERE rule IS NULL AND area = ANY(%s)", [unknown]
        )
        trimmed = trimmed - set(unknown) | {value for (value,) in cursor.fetchall()}
    areas = area_ids(sorted(trimmed), result)
    cursor.execute("CREATE TEMP TABLE import_areas (area text, id bigint) ON COMMIT DROP")
    cursor.execute(
        "INSERT INTO import_areas SELECT * FROM unnest(%s::text[], %s::bigint[])",
        [list(areas), list(areas.values())],
    )


def _mark_superseded(cursor: Any) -> bool:
    cursor.execute(_SUPERSEDED)
    return bool(cursor.rowcount)


CustomerValues = tuple[str, str, str, str, int, str]  # name, address, phone, email, area, search


def _new_and_changed_customers(
    cursor: Any, result: ImportResult, now: datetime.datetime, only: list[str] | None = None
) -> dict[int, CustomerValues]:
    """Creates the customers the file brings; returns the changes to known ones, by id."""
    if only is None:
        cursor.execute(_CUSTOMERS.format(only=""))
    else:
        cursor.execute(_CUSTOMERS.format(only="AND s.code = ANY(%s)"), [only])
    new: list[tuple[str, ...]] = []
    changed: dict[int, CustomerValues] = {}
    for code, name, address, phone, email, area_id, customer_id in cursor.fetchall():
        search_text = Customer.build_search_text(code=code, name=name, phone=phone, address=address)
        if customer_id is None:
            new.append((code, name, address, phone, email, area_id, search_text))
        else:
            changed[customer_id] = (name, address, phone, email, area_id, search_text)
    if new:
        columns = (list(column) for column in zip(*new, strict=True))
        cursor.execute(_NEW_CUSTOMERS, [now, now, *columns])
        result.customers_created += cursor.rowcount
    return changed


def _conflicts(cursor: Any, result: ImportResult) -> list[RowError]:
    """Why the INSERT was refused: rows repeating another row of the file, rows meeting a bill
    already there with other values (refused) or with the same ones (already loaded, skipped)."""
    cursor.execute(_REPEATS)
    refused = [_reason(*row) for row in cursor.fetchall()]
    # Index probes for the rows of the file, not a hash of the 5.6-million-row bills table.
    cursor.execute("SET LOCAL enable_hashjoin = off")
    cursor.execute("SET LOCAL enable_mergejoin = off")
    cursor.execute(_CONFLICTS)
    found = cursor.fetchall()
    cursor.execute("RESET enable_hashjoin")
    cursor.execute("RESET enable_mergejoin")
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
    repeated: bool,
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
    if repeated:
        _mark_superseded(cursor)
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
