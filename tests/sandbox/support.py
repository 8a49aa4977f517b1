"""Helpers shared by the gateway tests: a bank's signed messages and a sandbox bank on the
live server (with a worker that can reach it)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings

from payments import services
from payments.channels.vnpay import gateway
from payments.models import Payment
from sandbox import protocol
from tests.factories import customer_with_bills

PAY_PATH = "/sandbox/paymentv2/vpcpay.html"
API_PATH = "/sandbox/merchant_webapi/api/transaction"
IPN_PATH = "/callbacks/SANDBOX/ipn/"


def sandbox_credentials() -> dict[str, str]:
    return django_settings.PARTNER_CREDENTIALS["SANDBOX"]


def point_sandbox_at(settings: Any, base_url: str) -> None:
    """Make the portal and the sandbox bank find each other at `base_url` (the live server)."""
    credentials = dict(settings.PARTNER_CREDENTIALS)
    credentials["SANDBOX"] = {
        **credentials["SANDBOX"],
        "pay_url": base_url + PAY_PATH,
        "api_url": base_url + API_PATH,
    }
    settings.PARTNER_CREDENTIALS = credentials
    settings.PORTAL_BASE_URL = base_url
    settings.SANDBOX_PORTAL_URL = base_url


def redirect_payment(*, amounts: list[int] | None = None, customer: Any = None) -> Payment:
    """A pending SANDBOX redirect payment whose pay URL was signed, as the pay page does."""
    if customer is None:
        customer, _bills = customer_with_bills(amounts=amounts or [452_160, 310_000])
    payment = services.payment_start(
        customer_code=customer.code, method=Payment.Method.REDIRECT, partner_code="SANDBOX"
    ).payment
    gateway.payment_start_redirect(payment, client_ip="203.0.113.9", locale="vi")
    payment.refresh_from_db()
    return payment


def bank_message(
    payment: Payment,
    *,
    response_code: str = "00",
    status: str = "00",
    amount_x100: str | None = None,
    transaction_no: str = "14422574",
    tmn_code: str | None = None,
    secret: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The return/IPN parameters a bank sends, signed by the sandbox's own implementation."""
    params = {
        "vnp_Amount": amount_x100 if amount_x100 is not None else str(payment.amount * 100),
        "vnp_BankCode": "NCB",
        "vnp_BankTranNo": f"VNP{transaction_no}",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": payment.provider_data.get("vnp_OrderInfo", "Thanh toan"),
        "vnp_PayDate": "20260201033500",
        "vnp_ResponseCode": response_code,
        "vnp_TmnCode": tmn_code or sandbox_credentials()["tmn_code"],
        "vnp_TransactionNo": transaction_no,
        "vnp_TransactionStatus": status,
        "vnp_TxnRef": payment.reference,
        **extra,
    }
    return protocol.signed(params, secret or sandbox_credentials()["secret"])


def ipn_url(params: dict[str, str], partner: str = "SANDBOX") -> str:
    return f"/callbacks/{partner}/ipn/?{urlencode(params)}"


@pytest.fixture
def bank_on_live_server(live_server: Any, settings: Any) -> Any:
    """The sandbox bank and the portal, both served by the live server, pointing at each other."""
    point_sandbox_at(settings, live_server.url)
    return live_server


@pytest.fixture
def bank_worker(request: pytest.FixtureRequest, bank_on_live_server: Any, monkeypatch: Any) -> Any:
    """The real Celery worker (`celery_worker`), told where the sandbox bank's API is."""
    base = bank_on_live_server.url
    monkeypatch.setenv("PARTNER_SANDBOX_PAY_URL", base + PAY_PATH)
    monkeypatch.setenv("PARTNER_SANDBOX_API_URL", base + API_PATH)
    monkeypatch.setenv("PORTAL_BASE_URL", base)
    monkeypatch.setenv("SANDBOX_PORTAL_URL", base)
    return request.getfixturevalue("celery_worker")
