"""python manage.py import_bills FILE.csv [--strict]"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.billing_import import ImportFileError, import_bills
from portal.progress import count_lines, progress_bar


class Command(BaseCommand):
    help = "Load a billing data file (UTF-8 CSV; see docs/interfaces.md) and report every bad row."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file with the header of docs/interfaces.md")
        parser.add_argument(
            "--strict", action="store_true", help="load nothing unless every row is good"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        started = time.monotonic()
        try:
            total = count_lines(path) if self.stderr.isatty() else None
            with progress_bar(total=total, unit="rows", description="import") as bar:
                result = import_bills(path, strict=options["strict"], progress=bar.update)
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file") from None
        except ImportFileError as exc:
            raise CommandError(f"{path}: {exc}") from None
        for error in result.errors:
            self.stderr.write(f"line {error.line}: {error.reason}")
        elapsed = time.monotonic() - started
        if not result.loaded:
            self.stdout.write(
                f"{result.rows} rows read, {result.rejected} rejected: nothing loaded (--strict)."
            )
        else:
            self.stdout.write(
                f"{result.rows} rows read in {elapsed:.1f} s: "
                f"{result.bills_created} bills created, {result.bills_skipped} already loaded, "
                f"{result.rejected} rejected; customers {result.customers_created} created, "
                f"{result.customers_updated} updated; service areas {result.areas_created} created."
            )
        if result.errors:
            raise CommandError(f"{result.rejected} row(s) rejected")
