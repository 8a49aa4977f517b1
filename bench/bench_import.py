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
    from customers.models import Bill

    Bill.objects.filter(period=PERIOD, status=Bill.Status.UNPAID).delete()


def run() -> Section:
    from customers.billing_import import import_bills

    section = Section(
        "Import of a monthly billing file (467,636 rows)", "make bench (bench/bench_import.py)"
    )
    VAR.mkdir(parents=True, exist_ok=True)
    path = VAR / "bills-2026-11.csv"
    rows = write_monthly_file(path)
    _remove_imported()
    copy_times, import_times = [], []
    rerun = 0.0
    for attempt in range(RUNS):
        copy_times.append(_raw_copy(path))
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
    section.add("raw COPY into a bare table, median", f"{copy_s:.2f} s", "baseline")
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
    return section
