"""python manage.py simulate_transfer REFERENCE: announce a transfer to the running portal.

For demos and manual tests of VietQR without a bank: it sends, over HTTP, the notification a
transfer-watching service (SePay) would send when the customer's money reaches the utility's
account, with a note the way banks write it (their own prefix and suffix around the reference).
The portal treats it exactly like a real one: inbox, worker, matcher, receipt.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from common.localtime import GMT7
from payments.channels.transfers.notifications import DATE_FORMAT
from payments.models import Payment


class Command(BaseCommand):
    help = "Send a SePay-shaped transfer notification for a payment reference to the portal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("reference", help="the payment reference (e.g. EVNABCDEFGHK) or id")
        parser.add_argument("--amount", type=int, help="VND; default: the payment's amount")
        parser.add_argument("--content", help="the whole transfer note; default: a bank's note")
        parser.add_argument(
            "--url",
            default=f"{settings.PORTAL_BASE_URL}/callbacks/transfers/",
            help="the portal's transfer callback",
        )
        parser.add_argument("--key", default=settings.TRANSFER_WEBHOOK_API_KEY, help="API key")
        parser.add_argument("--id", type=int, help="the sender's id; default: random")
        parser.add_argument("--reference-code", help="the bank's reference; default: random")
        parser.add_argument("--account", default=settings.VIETQR_ACCOUNT, help="credited account")
        parser.add_argument("--out", action="store_true", help="an outgoing transfer")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        reference = options["reference"].strip()
        payment = _payment(reference)
        if payment is not None:
            reference = payment.reference
        amount = options["amount"]
        if amount is None:
            if payment is None:
                raise CommandError(f"No payment has the reference {reference}; give --amount.")
            amount = payment.amount
        bank_number = f"{secrets.randbelow(10**10):010d}"
        body = {
            "id": options["id"] or 10**8 + secrets.randbelow(9 * 10**8),
            "gateway": "Vietcombank",
            "transactionDate": timezone.now().astimezone(GMT7).strftime(DATE_FORMAT),
            "accountNumber": options["account"],
            "code": None,
            # Banks wrap the customer's note in their own text: the matcher must see through it.
            "content": options["content"]
            or f"MBVCB.{bank_number}.{reference}.CT tu 0912345678 NGUYEN VAN AN toi "
            f"{options['account']}",
            "transferType": "out" if options["out"] else "in",
            "transferAmount": amount,
            "accumulated": None,
            "subAccount": None,
            "referenceCode": options["reference_code"] or f"FT{bank_number}",
            "description": "",
        }
        try:
            response = requests.post(
                options["url"],
                data=json.dumps(body),
                headers={
                    "Authorization": f"Apikey {options['key']}",
                    "Content-Type": "application/json",
                },
                timeout=options["timeout"],
            )
        except requests.RequestException as exc:
            raise CommandError(f"Could not reach {options['url']}: {exc}") from exc
        self.stdout.write(json.dumps(body, ensure_ascii=False, indent=2))
        self.stdout.write(f"-> {response.status_code} {response.text}")
        if not response.ok:
            raise CommandError(f"The portal answered {response.status_code}.")


def _payment(reference: str) -> Payment | None:
    found = Payment.objects.filter(reference=reference.upper()).first()
    if found is not None:
        return found
    try:
        payment_id = uuid.UUID(reference)
    except ValueError:
        return None
    return Payment.objects.filter(pk=payment_id).first()
