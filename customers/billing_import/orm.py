"""The row-by-row loader, through the ORM, for databases other than PostgreSQL (SQLite, the
embedded default). It applies the same rules, in the same order, as the set-based loader."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from common.read_ahead import batched
from customers.billing_import.areas import area_ids
from customers.billing_import.result import ImportResult
from customers.billing_import.rules import BillRow, RowError, row_error, validate_row
from customers.codes import customer_code_pattern
from customers.models import Bill, Customer

_FIELDS = ("name", "address", "phone", "email", "service_area_id", "search_text")
# Values per IN list or bulk statement: within SQLite's limit on a statement's parameters.
_CHUNK = 500


def _valid_rows(records: Iterable[tuple[int, list[str]]], result: ImportResult) -> list[BillRow]:
    """Rows that pass every rule; a row repeating an earlier valid row's bill number, or its
    customer and month, is refused (whether or not that earlier row loads)."""
    pattern = customer_code_pattern()
    first_number: dict[str, int] = {}
    first_month: dict[tuple[str, datetime.date], int] = {}
    rows = []
    for line, values in records:
        row = validate_row(line, values, pattern)
        if isinstance(row, RowError):
            result.errors.append(row)
            continue
        number_line = first_number.setdefault(row.bill_number, line)
        month_line = first_month.setdefault((row.customer_code, row.period), line)
        if number_line != line:
            result.errors.append(
                row_error(line, "number_repeats", value=row.bill_number, first=number_line)
            )
        elif month_line != line:
            result.errors.append(
                row_error(
                    line,
                    "period_repeats",
                    code=row.customer_code,
                    period=f"{row.period:%Y-%m}",
                    first=month_line,
                )
            )
        else:
            rows.append(row)
    return rows


def load(
    records: Iterable[tuple[int, list[str]]], result: ImportResult, *, strict: bool, now: Any
) -> None:
    rows = _valid_rows(records, result)
    if strict and result.errors:
        return
    areas = area_ids({row.service_area for row in rows}, result)
    for row in rows:
        row.area_id = areas[row.service_area]
    existing: dict[str, tuple[str, datetime.date, int, int, datetime.date]] = {}
    for chunk in batched([row.bill_number for row in rows], _CHUNK):
        for bill in Bill.objects.filter(number__in=chunk).select_related("customer"):
            existing[bill.number] = (
                bill.customer.code,
                bill.period,
                bill.kwh,
                bill.amount,
                bill.due_date,
            )
    customers: dict[str, Customer] = {}
    for chunk in batched(sorted({row.customer_code for row in rows}), _CHUNK):
        customers.update({c.code: c for c in Customer.objects.filter(code__in=chunk)})
    taken_months: dict[tuple[int, datetime.date], str] = {}
    for customer_ids in batched([c.pk for c in customers.values()], _CHUNK):
        for customer_id, period, number in Bill.objects.filter(
            customer_id__in=customer_ids
        ).values_list("customer_id", "period", "number"):
            taken_months[(customer_id, period)] = number
    good: list[BillRow] = []
    conflicts: list[RowError] = []
    for row in rows:
        found = existing.get(row.bill_number)
        if found is not None:
            if found != (row.customer_code, row.period, row.kwh, row.amount, row.due_date):
                code, period, kwh, amount, due = found
                conflicts.append(
                    row_error(
                        row.line,
                        "bill_changed",
                        value=row.bill_number,
                        code=code,
                        period=f"{period:%Y-%m}",
                        kwh=kwh,
                        amount=amount,
                        due=due,
                    )
                )
                continue
        else:
            customer = customers.get(row.customer_code)
            other = taken_months.get((customer.pk, row.period)) if customer else None
            if other is not None:
                conflicts.append(
                    row_error(
                        row.line,
                        "period_taken",
                        value=other,
                        code=row.customer_code,
                        period=f"{row.period:%Y-%m}",
                    )
                )
                continue
        good.append(row)
    result.errors.extend(conflicts)
    if strict and conflicts:
        return
    result.bills_skipped = sum(1 for row in good if row.bill_number in existing)
    _load_customers(good, customers, result, now)
    ids = {code: customer.pk for code, customer in customers.items()}
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


def _load_customers(
    good: list[BillRow], customers: dict[str, Customer], result: ImportResult, now: Any
) -> None:
    """A customer's details come from its last row that loads; `customers` gains the new ones."""
    latest: dict[str, BillRow] = {}
    for row in good:
        latest[row.customer_code] = row
    new_customers, changed = [], []
    for code, row in latest.items():
        values = (row.customer_name, row.address, row.phone, row.email, row.area_id)
        customer = customers.get(code)
        if customer is not None and tuple(getattr(customer, f) for f in _FIELDS[:5]) == values:
            continue
        search_text = Customer.build_search_text(
            code=code, name=row.customer_name, phone=row.phone, address=row.address
        )
        fields = dict(zip(_FIELDS, (*values, search_text), strict=True))
        if customer is None:
            customers[code] = Customer(code=code, **fields)
            new_customers.append(customers[code])
        else:
            for name, value in fields.items():
                setattr(customer, name, value)
            customer.updated_at = now
            changed.append(customer)
    Customer.objects.bulk_create(new_customers, batch_size=500)
    Customer.objects.bulk_update(changed, [*_FIELDS, "updated_at"], batch_size=500)
    result.customers_created, result.customers_updated = len(new_customers), len(changed)
    missing = [c.code for c in new_customers if c.pk is None]
    for chunk in batched(missing, _CHUNK):  # backends that do not return ids on insert
        for code, pk in Customer.objects.filter(code__in=chunk).values_list("code", "id"):
            customers[code].pk = pk
