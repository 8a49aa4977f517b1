"""python manage.py check_integrity: exits non-zero on any breach of the money rules."""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from payments.integrity import integrity_check


class Command(BaseCommand):
    help = "Check that every payment, bill and bank message adds up; exit 1 on any breach."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--in-flight-seconds",
            type=int,
            default=300,
            help="how long an unprocessed inbound message may still be in flight (default 300)",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the report as JSON (for monitoring)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = integrity_check(
            in_flight_for=datetime.timedelta(seconds=options["in_flight_seconds"])
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            self.stdout.write(report.as_text())
        if not report.ok:
            raise CommandError(f"{len(report.breaches)} integrity rule(s) broken")
