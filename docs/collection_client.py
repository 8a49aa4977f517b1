r"""Example client of the portal's collection API, for partner banks (see docs/collection-api.md).

Every request is signed with the partner's secret:

    X-Partner-Code: VCB
    X-Timestamp:    1764209702                      (Unix seconds, now)
    X-Signature:    hex(HMAC-SHA256(secret,
                        "1764209702\nPOST\n/api/v1/collection/payments/\n" + raw body))

Sign the exact bytes you send: serialise the JSON once, sign those bytes, send those bytes. The
method (upper case) and the URL's path (no host, no query string) are signed too, so a request
signed for one operation is refused by the others.

    python docs/collection_client.py --base-url http://127.0.0.1:8000 --partner SANDBOX \
        --secret "$PARTNER_SANDBOX_SECRET" inquiry PA14HT0012345
    python docs/collection_client.py ... pay PA14HT0012345 VCB-0001      (pays every unpaid bill)
    python docs/collection_client.py ... reverse VCB-0001 "customer cancelled at the counter"
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

GMT7 = timezone(timedelta(hours=7))


def string_to_sign(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    """The exact bytes signed: timestamp, METHOD, path and raw body, joined by newlines."""
    return f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of `string_to_sign(...)`, keyed with the partner's secret."""
    message = string_to_sign(timestamp, method, path, body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class CollectionClient:
    def __init__(self, base_url: str, partner: str, secret: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.partner = partner
        self.secret = secret
        self.timeout = timeout
        self.session = requests.Session()

    def post(self, path: str, payload: dict[str, Any]) -> requests.Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        url_path = f"/api/v1/collection/{path}/"
        headers = {
            "Content-Type": "application/json",
            "X-Partner-Code": self.partner,
            "X-Timestamp": timestamp,
            "X-Signature": sign(self.secret, timestamp, "POST", url_path, body),
        }
        url = f"{self.base_url}{url_path}"
        return self.session.post(url, data=body, headers=headers, timeout=self.timeout)

    def inquiry(self, customer_code: str) -> requests.Response:
        return self.post("inquiry", {"customer_code": customer_code})

    def pay(
        self,
        *,
        transaction_id: str,
        customer_code: str,
        bill_numbers: list[str],
        amount: int,
        paid_at: datetime,
    ) -> requests.Response:
        # On a timeout, send the very same notice again: the portal answers it once.
        return self.post(
            "payments",
            {
                "transaction_id": transaction_id,
                "customer_code": customer_code,
                "bill_numbers": bill_numbers,
                "amount": amount,
                "paid_at": paid_at.isoformat(timespec="seconds"),
            },
        )

    def reverse(self, *, transaction_id: str, reason: str) -> requests.Response:
        return self.post("reversals", {"transaction_id": transaction_id, "reason": reason})


def _show(response: requests.Response) -> dict[str, Any]:
    replayed = " (replayed)" if response.headers.get("Idempotent-Replayed") else ""
    print(f"HTTP {response.status_code}{replayed}")
    body: dict[str, Any] = response.json()
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Example client of the collection API.")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--partner", required=True)
    parser.add_argument("--secret", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    inquiry = commands.add_parser("inquiry", help="what a customer owes")
    inquiry.add_argument("customer_code")
    pay = commands.add_parser("pay", help="pay every unpaid bill of a customer")
    pay.add_argument("customer_code")
    pay.add_argument("transaction_id")
    reverse = commands.add_parser("reverse", help="take back today's payment")
    reverse.add_argument("transaction_id")
    reverse.add_argument("reason")
    args = parser.parse_args(argv)

    client = CollectionClient(args.base_url, args.partner, args.secret)
    if args.command == "inquiry":
        response = client.inquiry(args.customer_code)
        _show(response)
    elif args.command == "pay":
        owed = _show(client.inquiry(args.customer_code))
        if "bills" not in owed or not owed["bills"]:
            return 1
        response = client.pay(
            transaction_id=args.transaction_id,
            customer_code=owed["customer_code"],
            bill_numbers=[bill["number"] for bill in owed["bills"]],
            amount=owed["total_due"],
            paid_at=datetime.now(GMT7),
        )
        _show(response)
    else:
        response = client.reverse(transaction_id=args.transaction_id, reason=args.reason)
        _show(response)
    return 0 if response.ok else 1


if __name__ == "__main__":
    sys.exit(main())
