"""python manage.py import_bills FILE.csv [--strict] [--recheck]"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.progress import count_lines, progress_bar
from customers.billing_import import ImportFileError, ImportResult, import_bills
from customers.signals import new_bills_loaded

# Enough to see what kind of mistake the file has; every line is in the report beside it.
SHOWN_ERRORS = 20


def error_report_path(path: str) -> Path:
    """FILE.csv -> FILE.errors.csv, beside it, where the operator fixing the file looks."""
    source = Path(path)
    return source.with_name(f"{source.stem}.errors.csv")


class Command(BaseCommand):
    help = "Load a billing data file (UTF-8 CSV; see docs/interfaces.md) and report every bad row."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file with the header of docs/interfaces.md")
        parser.add_argument(
            "--strict", action="store_true", help="load nothing unless every row is good"
        )
        parser.add_argument(
            "--recheck",
            action="store_true",
            help="read and check the file again even if this same file has loaded before",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        started = time.monotonic()
        try:
            total = count_lines(path) if self.stderr.isatty() else None
            with progress_bar(total=total, unit="rows", description="import") as bar:
                result = import_bills(
                    path, strict=options["strict"], recheck=options["recheck"], progress=bar.update
                )
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except ImportFileError as exc:
            raise CommandError(f"{path}: {exc}") from None
        elapsed = time.monotonic() - started
        if result.loaded and result.bills_created:
            new_bills_loaded.send(sender=self.__class__)
        if result.errors:
            self._report_errors(path, result)
        self.stdout.write(self._summary(result, elapsed))
        if result.errors:
            raise CommandError(f"{result.rejected} row(s) rejected")

    def _report_errors(self, path: str, result: ImportResult) -> None:
        for error in result.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"line {error.line}: {error.reason}")
        report = error_report_path(path)
        with report.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("line", "reason"))
            writer.writerows((error.line, error.reason) for error in result.errors)
        more = result.rejected - SHOWN_ERRORS
        shown = f"{more} more; " if more > 0 else ""
        self.stderr.write(f"{shown}every rejected line with its reason: {report}")

    def _summary(self, result: ImportResult, elapsed: float) -> str:
        if result.loaded_before is not None:
            return (
                f"This file already loaded completely on {result.loaded_before:%Y-%m-%d %H:%M} "
                f"({result.rows} rows): nothing changed. Use --recheck to read it again."
            )
        if not result.loaded:
            return (
                f"{result.rows} rows read, {result.rejected} rejected: nothing loaded (--strict)."
            )
        return (
            f"{result.rows} rows read in {elapsed:.1f} s: "
            f"{result.bills_created} bills created, {result.bills_skipped} already loaded, "
            f"{result.rejected} rejected; customers {result.customers_created} created, "
            f"{result.customers_updated} updated; service areas {result.areas_created} created."
        )
