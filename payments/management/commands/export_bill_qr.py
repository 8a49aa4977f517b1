"""python manage.py export_bill_qr --period YYYY-MM [--area CODE] [--svg-dir DIR] OUT.csv"""

from __future__ import annotations

import csv
import datetime
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.progress import progress_bar
from customers import paylinks
from customers.models import ServiceArea
from payments.paper_bills import COLUMNS, printed_bills, write_svg


def _period(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(f"{text}-01")
    except ValueError:
        raise CommandError(f"--period {text!r} is not YYYY-MM") from None


class Command(BaseCommand):
    help = (
        "Write, for the printing house, each unpaid bill of a period with its reference, VietQR "
        "payload and pay link (and, with --svg-dir, one QR image per bill)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out", help="the CSV file to write")
        parser.add_argument("--period", required=True, help="billing period, YYYY-MM")
        parser.add_argument("--area", help="only this service area (its code)")
        parser.add_argument("--svg-dir", help="also write one QR image per bill into this folder")

    def handle(self, *args: Any, **options: Any) -> None:
        period = _period(options["period"])
        area = options["area"]
        if area and not ServiceArea.objects.filter(code=area).exists():
            raise CommandError(f"--area {area}: no service area has this code")
        if not paylinks.is_enabled():
            raise CommandError("PAY_LINK_KEY is not set: the bills would carry no pay link")
        if not settings.DEBUG and not settings.PORTAL_BASE_URL.startswith("https://"):
            raise CommandError(
                f"PORTAL_BASE_URL is {settings.PORTAL_BASE_URL}: printed links must be the "
                "portal's public https address"
            )
        svg_dir = Path(options["svg_dir"]) if options["svg_dir"] else None
        if svg_dir:
            svg_dir.mkdir(parents=True, exist_ok=True)
            if any(svg_dir.glob("*.svg")):
                raise CommandError(f"--svg-dir {svg_dir} already holds QR images: use a new one")
        started = time.monotonic()
        count = 0
        with (
            open(options["out"], "w", encoding="utf-8", newline="") as handle,
            progress_bar(total=None, unit="bills", description="export") as bar,
        ):
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for bill in printed_bills(period=period, area_code=area):
                writer.writerow(bill.as_row())
                if svg_dir:
                    write_svg(bill, svg_dir)
                count += 1
                if count % 5000 == 0:
                    bar.update(5000)
        self.stdout.write(
            f"{count} bills of {period:%Y-%m} written to {options['out']} "
            f"in {time.monotonic() - started:.1f} s"
            + (f", their QR images to {svg_dir}" if svg_dir else "")
            + "."
        )
