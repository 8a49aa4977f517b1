"""A 467,636-row monthly billing file: import_bills against PostgreSQL's raw COPY of the same file
into a bare table. Target: at most 3x the raw COPY time."""

from __future__ import annotations

import csv
import datetime
import random
import time
from pathlib import Path

from bench.common import VAR, Section, median

PERIOD = datetime.date(2026, 11, 1)
RUNS = 3


def write_monthly_file(path: Path) -> int:
    """Next month's bills for every customer of the province, as the billing system exports them."""
    from django.db import connection

    from customers.billing_import import COLUMNS
    from customers.tariff import bill_amount

    rng = random.Random(11)
    rows = 0
    with connection.cursor() as cursor, path.open("w", encoding="utf-8", newline="") as handle:
        cursor.execute(
            """
            SELECT c.id, c.code, c.name, c.address, a.name, c.phone, c.email
            FROM customers_customer c JOIN customers_servicearea a ON a.id = c.service_area_id
            ORDER BY c.id
            """
        )
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for customer_id, code, name, address, area, phone, email in cursor.fetchall():
            kwh = rng.randint(60, 420)
            writer.writerow(
                [code, name, address, area, phone, email, f"HD{PERIOD:%y%m}{customer_id:08d}",
                 f"{PERIOD:%Y-%m}", kwh, bill_amount(kwh), "2026-12-20"]
            )  # fmt: skip
            rows += 1
    return rows


def _raw_copy(path: Path) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_bills")
        columns = ", ".join(f"c{i} text" for i in range(11))
        cursor.execute(f"CREATE TABLE bench_raw_bills ({columns})")
        started = time.perf_counter()
        with (
            path.open("rb") as handle,
            cursor.cursor.copy("COPY bench_raw_bills FROM STDIN WITH (FORMAT csv, HEADER)") as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw_bills")
    return elapsed


def _remove_imported() -> None:
    """Delete the benchmark's bills, then vacuum: a real month's numbers are new to the index,
    not the dead entries of the previous run."""
    from django.db import connection

    from customers.models import Bill

    Bill.objects.filter(period=PERIOD, status=Bill.Status.UNPAID).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE customers_bill")


def _copy_into_bills(path: Path) -> float:
    """The floor of any correct import: COPY of the same rows straight into customers_bill, with
    its indexes and constraints, skipping every check (customer ids looked up beforehand)."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT code, id FROM customers_customer")
        ids = dict(cursor.fetchall())
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for r in reader:
            rows.append((r[6], ids[r[0]], f"{r[7]}-01", int(r[8]), int(r[9]), r[10]))
    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        with cursor.cursor.copy(
            "COPY customers_bill (number, customer_id, period, kwh, amount, due_date, issued_at,"
            " status) FROM STDIN"
        ) as copy:
            for number, customer_id, period, kwh, amount, due in rows:
                copy.write_row((number, customer_id, period, kwh, amount, due, "now", "unpaid"))
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def run() -> Section:
    from customers.billing_import import import_bills

    section = Section(
        "Import of a monthly billing file (467,636 rows)", "make bench (bench/bench_import.py)"
    )
    VAR.mkdir(parents=True, exist_ok=True)
    path = VAR / "bills-2026-11.csv"
    rows = write_monthly_file(path)
    _remove_imported()
    copy_times, import_times, floor_times = [], [], []
    rerun = 0.0
    for attempt in range(RUNS):
        copy_times.append(_raw_copy(path))
        floor_times.append(_copy_into_bills(path))
        _remove_imported()
        started = time.perf_counter()
        result = import_bills(path)
        import_times.append(time.perf_counter() - started)
        assert result.bills_created == rows and not result.errors, result
        if attempt == RUNS - 1:
            started = time.perf_counter()
            again = import_bills(path)
            rerun = time.perf_counter() - started
            assert again.bills_created == 0 and again.bills_skipped == rows
        _remove_imported()
    copy_s, import_s = median(copy_times), median(import_times)
    ratio = import_s / copy_s
    floor_s = median(floor_times)
    section.add("raw COPY into a bare table, median", f"{copy_s:.2f} s", "baseline")
    section.add(
        "COPY into customers_bill itself (indexes, no checks), median",
        f"{floor_s:.2f} s",
        f"{floor_s / copy_s:.2f}× COPY",
    )
    section.add(
        "import_bills (validate, stage, upsert), median",
        f"{import_s:.2f} s",
        f"{ratio:.2f}× COPY",
        "≤ 3× COPY",
    )
    section.add("re-running the same file (all rows skipped)", f"{rerun:.2f} s")
    section.add("rows per second", f"{rows / import_s:,.0f}")
    section.notes.append(
        f"{rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), {RUNS} runs each, into the seeded "
        "province (5.6 million bills already present), every bill of the file new."
    )
    section.passed = ratio <= 3
    if not section.passed:
        section.notes.append(
            f"Why the target is missed: writing the rows into customers_bill at all, with its "
            f"indexes and no checks, already takes {floor_s / copy_s:.1f}× the bare COPY; the "
            "rest is the validation the issue asks for (every row's code, period, dates and "
            "amounts checked in Python, duplicates in the file, conflicts with bills already "
            "there) and the lookup of each row's customer among 467,636, on two cores that "
            "PostgreSQL shares. Profiled and already done: rows streamed from the reader into "
            "COPY of a staging table, one set-based pass to find customers and conflicts (no "
            "ON CONFLICT per row), search text folded only for new or changed customers. What "
            "would come closer: validation in parallel processes on more cores, and a server with "
            "room (work_mem, shared_buffers) for the upsert's sorts and index updates in memory."
        )
    return section
