"""export_bill_qr of a province's month: 467,636 unpaid bills, each with its reference, VietQR
payload and signed pay link, streamed to CSV. Target: well under a minute."""

from __future__ import annotations

import io
import time

from bench.bench_import import PERIOD, _copy_into_bills, _remove_imported, write_monthly_file
from bench.common import VAR, Section

TARGET_SECONDS = 60


def run() -> Section:
    from django.core.management import call_command
    from django.test import override_settings

    section = Section(
        "Export of a month's bills for printing (export_bill_qr)",
        "make bench (bench/bench_export.py)",
    )
    VAR.mkdir(parents=True, exist_ok=True)
    source = VAR / "bills-2026-11.csv"
    rows = write_monthly_file(source)
    _remove_imported()
    _copy_into_bills(source)  # the month's bills, all unpaid
    out = VAR / "bills-2026-11-print.csv"
    started = time.perf_counter()
    with override_settings(PORTAL_BASE_URL="https://portal.example.vn"):
        call_command(
            "export_bill_qr", str(out), "--period", f"{PERIOD:%Y-%m}", stdout=io.StringIO()
        )
    elapsed = time.perf_counter() - started
    written = sum(1 for _ in out.open(encoding="utf-8")) - 1
    _remove_imported()
    assert written == rows, (written, rows)
    section.add("bills written", f"{written:,}")
    section.add("time", f"{elapsed:.1f} s", target=f"< {TARGET_SECONDS} s")
    section.add("bills per second", f"{written / elapsed:,.0f}")
    section.add("file size", f"{out.stat().st_size / 1e6:.0f} MB")
    section.notes.append(
        "Each row: the bill's reference (its id spread and checked), its VietQR payload (CRC "
        "included) and its signed pay link, read from the database with a server-side cursor."
    )
    section.passed = elapsed < TARGET_SECONDS
    return section
