"""python manage.py reconcile_partner PARTNER DATE FILE.csv"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import translation
from tqdm import tqdm

from payments import reconciliation
from payments.models import Partner

# Exit statuses: 0 everything matches; 1 differences or unreadable rows; 2 nothing compared.
DIFFERENCES, UNUSABLE = 1, 2


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")))


class Command(BaseCommand):
    help = (
        "Compare a partner's end-of-day settlement file (transaction_id,customer_code,"
        "bill_numbers,amount,paid_at) with the collection payments the portal recorded for that "
        "partner and business day (GMT+7); save the report, print it and write it as Markdown "
        "and CSV. Exits 1 when anything differs or a row cannot be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", help="partner code, e.g. VCB")
        parser.add_argument("date", help="business day of the file, YYYY-MM-DD (GMT+7)")
        parser.add_argument("file", help="the partner's settlement CSV")
        parser.add_argument(
            "--output-dir",
            type=Path,
            default=None,
            help="where to write <PARTNER>_<YYYYMMDD>.md and .csv "
            "(default: var/reports/reconciliation)",
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            default="en",
            help="language of the printed and written report (default en)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        code = options["partner"].strip().upper()
        partner = Partner.objects.filter(code=code).first()
        if partner is None or not partner.collects:
            raise CommandError(f"{code} is not a collecting partner.", returncode=UNUSABLE)
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError(
                f"{options['date']} is not a date (YYYY-MM-DD).", returncode=UNUSABLE
            ) from None
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file", returncode=UNUSABLE)
        terminal = self.stderr.isatty()
        with (
            translation.override(options["language"]),
            tqdm(
                total=_count_rows(path) if terminal else None,
                unit="rows",
                desc=f"{code} {day}",
                file=self.stderr,
                disable=not terminal,
                dynamic_ncols=True,
            ) as bar,
        ):
            try:
                report, files = reconciliation.reconcile_file(
                    partner=partner,
                    business_day=day,
                    path=path,
                    progress=bar.update,
                    report_dir=options["output_dir"],
                )
            except reconciliation.SettlementFileError as exc:
                raise CommandError(f"{path}: {exc}", returncode=UNUSABLE) from None
            except UnicodeDecodeError:
                raise CommandError(f"{path}: not UTF-8 text", returncode=UNUSABLE) from None
            bar.close()
            for row in report.details.get("bad_rows", []):
                self.stderr.write(f"line {row['line']}: {row['reason']}")
            self.stdout.write(reconciliation.report_markdown(report))
        self.stdout.write("Report written to " + ", ".join(str(f) for f in files))
        bad_rows = len(report.details.get("bad_rows", []))
        if reconciliation.report_has_problems(report):
            raise CommandError(
                f"{report.matched} matched, {report.missing_ours} missing on our side, "
                f"{report.missing_theirs} missing on theirs, {report.amount_differences} "
                f"differences, {bad_rows} unreadable row(s).",
                returncode=DIFFERENCES,
            )
        self.stdout.write(self.style.SUCCESS(f"{report.matched} transactions, all matched."))
