"""Shared cast for the collection API tests: two partners with secrets, and a signing client.

Holds no tests itself; the other `test_collection_*` modules import from it.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from payments.channels.collection.signing import sign

VCB_SECRET = "vcb-collection-secret-0123456789abcdef"
MOMO_SECRET = "momo-collection-secret-fedcba9876543210"
SECRETS = {"VCB": VCB_SECRET, "MOMO": MOMO_SECRET}

INQUIRY = "/api/v1/collection/inquiry/"
PAYMENTS = "/api/v1/collection/payments/"
REVERSALS = "/api/v1/collection/reversals/"


@pytest.fixture
def partner_secrets(settings: Any) -> dict[str, str]:
    """VCB and MOMO may call the collection API; every other partner has no secret."""
    settings.PARTNER_CREDENTIALS = {code: {"secret": secret} for code, secret in SECRETS.items()}
    return SECRETS


def encode(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def signed_headers(
    body: bytes,
    path: str,
    *,
    method: str = "POST",
    partner: str = "VCB",
    secret: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers of a request to `path` (a query string is left out of the signature)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = secret or SECRETS.get(partner, "no-secret")
    return {
        "X-Partner-Code": partner,
        "X-Timestamp": stamp,
        "X-Signature": sign(key, stamp, method, urlsplit(path).path, body),
    }


def post(client: Client, path: str, body: bytes, headers: dict[str, str], **extra: Any) -> Any:
    return client.post(path, data=body, content_type="application/json", headers=headers, **extra)


def signed_post(
    client: Client,
    path: str,
    payload: Any,
    *,
    partner: str = "VCB",
    secret: str | None = None,
    timestamp: int | None = None,
    **extra: Any,
) -> Any:
    body = encode(payload)
    headers = signed_headers(body, path, partner=partner, secret=secret, timestamp=timestamp)
    return post(client, path, body, headers, **extra)


def notice(customer: Any, bills: list[Any], transaction_id: str, **changes: Any) -> dict[str, Any]:
    """A payment notice for these bills with their exact total, paid now."""
    from django.utils import timezone

    body = {
        "transaction_id": transaction_id,
        "customer_code": customer.code,
        "bill_numbers": [bill.number for bill in bills],
        "amount": sum(bill.amount for bill in bills),
        "paid_at": timezone.now().isoformat(),
    }
    body.update(changes)
    return body
