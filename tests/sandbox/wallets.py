"""Helpers shared by the wallet tests: the MoMo and ZaloPay partners configured against the
sandbox's wallets, their signed messages (made by the sandbox's own code, not the portal's), and
the wallets on the live server (with a worker that can reach them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from payments import services
from payments.channels.common.pages import remember
from payments.models import Payment
from sandbox import momo as sandbox_momo
from sandbox import protocol as sandbox_protocol
from sandbox import zalopay as sandbox_zalopay
from tests.factories import customer_with_bills

MOMO_PATH = "/sandbox/momo"
ZALOPAY_PATH = "/sandbox/zalopay"
MOMO_IPN_PATH = "/callbacks/momo/ipn/"
ZALOPAY_CALLBACK_PATH = "/callbacks/zalopay/callback/"
MOMO = {
    "secret": "test-momo-secret-key-7b1f3a9c2e",
    "access_key": "TESTACCESSKEY7",
    "partner_code": "MOMOTEST2026",
    "api_url": "http://127.0.0.1:9" + MOMO_PATH,  # nothing listens: point_wallets_at() moves it
}
ZALOPAY = {
    "key1": "test-zalopay-key1-5c0d8e2f4a6b",
    "key2": "test-zalopay-key2-9e1a3c5d7f0b",
    "app_id": "2553",
    "api_url": "http://127.0.0.1:9" + ZALOPAY_PATH,
}


def wallet_credentials(base_url: str = "http://127.0.0.1:9") -> dict[str, dict[str, str]]:
    return {
        "MOMO": {**MOMO, "api_url": base_url + MOMO_PATH},
        "ZALOPAY": {**ZALOPAY, "api_url": base_url + ZALOPAY_PATH},
    }


def configure_wallets(settings: Any, base_url: str = "http://127.0.0.1:9") -> None:
    """MoMo and ZaloPay configured, their APIs at `base_url` (the live server's sandbox)."""
    settings.PARTNER_CREDENTIALS = {**settings.PARTNER_CREDENTIALS, **wallet_credentials(base_url)}


def point_wallets_at(settings: Any, base_url: str) -> None:
    """The portal and the sandbox's wallets find each other at `base_url` (the live server)."""
    configure_wallets(settings, base_url)
    settings.PORTAL_BASE_URL = base_url
    settings.SANDBOX_PORTAL_URL = base_url


@pytest.fixture
def wallets(settings: Any) -> None:
    """MoMo and ZaloPay configured (their APIs out of reach: nothing here calls them)."""
    configure_wallets(settings)


@pytest.fixture
def wallets_on_live_server(live_server: Any, settings: Any) -> Any:
    point_wallets_at(settings, live_server.url)
    return live_server


@pytest.fixture
def wallet_worker(
    request: pytest.FixtureRequest, wallets_on_live_server: Any, monkeypatch: Any
) -> Any:
    """The real Celery worker (`celery_worker`), told the wallets' credentials and where the
    sandbox's wallets are."""
    base = wallets_on_live_server.url
    for code, credentials in wallet_credentials(base).items():
        for name, value in credentials.items():
            monkeypatch.setenv(f"PARTNER_{code}_{name.upper()}", value)
    monkeypatch.setenv("PORTAL_BASE_URL", base)
    monkeypatch.setenv("SANDBOX_PORTAL_URL", base)
    return request.getfixturevalue("celery_worker")


def wallet_payment(
    partner: str, *, amounts: list[int] | None = None, customer: Any = None
) -> Payment:
    """A pending wallet payment whose order the wallet opened (what the create call leaves in
    the payment), without calling the wallet."""
    if customer is None:
        customer, _bills = customer_with_bills(amounts=amounts or [452_160, 310_000])
    payment = services.payment_start(
        customer_code=customer.code, method=Payment.Method.REDIRECT, partner_code=partner
    ).payment
    if partner == "ZALOPAY":
        stamp = payment.created_at.astimezone(sandbox_protocol.VIETNAM)
        remember(
            payment,
            zalopay_app_trans_id=f"{stamp:%y%m%d}_{payment.reference}",
            zalopay_app_time=str(int(payment.created_at.timestamp() * 1000)),
            redirect_url="https://zalopay.example/openinapp?order=x",
            app_url="https://zalopay.example/openinapp?order=x",
        )
    else:
        remember(
            payment,
            momo_request_id="r" * 32,
            redirect_url="https://momo.example/pay",
            app_url="momo://app?x",
        )
    payment.refresh_from_db()
    return payment


# --- MoMo's messages ----------------------------------------------------------------------------
def _momo_merchant(secret: str | None, partner_code: str | None) -> sandbox_momo.Merchant:
    return sandbox_momo.Merchant(
        partner_code=partner_code or MOMO["partner_code"],
        access_key=MOMO["access_key"],
        secret_key=secret or MOMO["secret"],
    )


def momo_result(
    payment: Payment,
    *,
    result_code: int = 0,
    amount: int | None = None,
    trans_id: int = 4_088_878_653,
    secret: str | None = None,
    partner_code: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """MoMo's IPN body for a payment, signed by the sandbox's own implementation."""
    values: dict[str, Any] = {
        "partnerCode": partner_code or MOMO["partner_code"],
        "orderId": payment.reference,
        "requestId": payment.provider_data.get("momo_request_id", "r" * 32),
        "amount": payment.amount if amount is None else amount,
        "orderInfo": f"Thanh toan tien dien {payment.customer.code} {payment.reference}",
        "orderType": "momo_wallet",
        "transId": trans_id if result_code == 0 else 0,
        "resultCode": result_code,
        "message": "Successful." if result_code == 0 else "Failed.",
        "payType": "qr",
        "responseTime": 1_769_976_900_000,  # 2026-02-01 20:15 UTC
        "extraData": "",
        **extra,
    }
    values["signature"] = sandbox_momo.signature(
        values, sandbox_momo.RESULT_SIGNED, _momo_merchant(secret, partner_code)
    )
    return values


# --- ZaloPay's messages -------------------------------------------------------------------------
def zalopay_callback(
    payment: Payment,
    *,
    amount: int | None = None,
    zp_trans_id: int = 260_201_000_000_389,
    key2: str | None = None,
    app_id: str | None = None,
    app_trans_id: str | None = None,
    type_: int = 1,
) -> dict[str, Any]:
    """ZaloPay's callback body for a payment, its MAC made by the sandbox's own code."""
    data = json.dumps(
        {
            "app_id": int(app_id or ZALOPAY["app_id"]),
            "app_trans_id": app_trans_id or payment.provider_data["zalopay_app_trans_id"],
            "app_time": int(payment.provider_data.get("zalopay_app_time", "0")),
            "app_user": payment.customer.code,
            "amount": payment.amount if amount is None else amount,
            "embed_data": '{"redirecturl":"https://portal.example/pay/return/ZALOPAY/"}',
            "item": "[]",
            "zp_trans_id": zp_trans_id,
            "server_time": 1_769_976_900_000,
            "channel": 38,
            "merchant_user_id": "test-user",
            "user_fee_amount": 0,
            "discount_amount": 0,
        },
        separators=(",", ":"),
    )
    return {"data": data, "mac": sandbox_zalopay.mac(key2 or ZALOPAY["key2"], data), "type": type_}
