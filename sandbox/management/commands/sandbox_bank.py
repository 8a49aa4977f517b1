"""`python manage.py sandbox_bank`: the sandbox bank's courier (the `bank` process of the Procfile).

Sends the IPNs and transfer notifications waiting in the bank's outbox, retrying each until the
portal acknowledges it. With the sandbox disabled it idles, so `make run` keeps its other
processes (honcho stops them all when one exits).
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from sandbox import bank, delivery


class Command(BaseCommand):
    help = "Run the sandbox bank's courier: deliver IPNs and transfer notifications with retries."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between looks at the outbox"
        )
        parser.add_argument("--once", action="store_true", help="deliver what is due, then exit")
        parser.add_argument(
            "--timeout", type=float, default=10.0, help="seconds to wait for the portal's answer"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.running = True
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if not settings.SANDBOX_BANK_ENABLED:
            self.stdout.write("The sandbox bank is disabled (SANDBOX_BANK_ENABLED); idling.")
            while self.running and not options["once"]:
                time.sleep(1)
            return
        shop = bank.merchant()
        self.stdout.write(
            f"Sandbox bank: merchant {shop.tmn_code if shop else '(none configured)'}, "
            f"notifying {bank.portal_url()}"
        )
        while self.running:
            close_old_connections()
            try:
                sent = delivery.deliver_due(timeout=options["timeout"])
            except Exception as exc:  # noqa: BLE001 - a database blip must not stop the courier
                self.stderr.write(f"outbox round failed: {exc!r}")
                sent = 0
            if sent:
                self.stdout.write(f"tried {sent} notification(s)")
            if options["once"]:
                break
            if not sent:
                time.sleep(options["interval"])

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False
