"""The sandbox's MoMo wallet: its side of MoMo's API v2 (captureWallet), written independently of
the portal (the sandbox must catch the portal's mistakes, not repeat them).

It knows the portal as a merchant with a partner code, an access key and a secret key
(`settings.PARTNER_CREDENTIALS["MOMO"]`), like MoMo would. Signatures: HMAC-SHA256 over
`name=value` pairs joined by '&', names in alphabetical order, values unescaped.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandbox import bank
from sandbox.models import BankTransaction, Notification, WalletOrder

CREATE_SIGNED = [
    "accessKey",
    "amount",
    "extraData",
    "ipnUrl",
    "orderId",
    "orderInfo",
    "partnerCode",
    "redirectUrl",
    "requestId",
    "requestType",
]
RESULT_SIGNED = [
    "accessKey",
    "amount",
    "extraData",
    "message",
    "orderId",
    "orderInfo",
    "orderType",
    "partnerCode",
    "payType",
    "requestId",
    "responseTime",
    "resultCode",
    "transId",
]
QUERY_SIGNED = ["accessKey", "orderId", "partnerCode", "requestId"]
ORDER_ID = re.compile(r"^[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*$")
MIN_AMOUNT, MAX_AMOUNT = 1_000, 50_000_000

MESSAGES = {
    0: "Successful.",
    11: "Access denied.",
    13: "Merchant authentication failed.",
    20: "Bad format request.",
    21: "Invalid amount.",
    22: "Amount out of range.",
    41: "Duplicated orderId.",
    42: "Invalid orderId or orderId is not found.",
    1000: "Transaction is initiated, waiting for user confirmation.",
    1001: "Insufficient funds.",
    1002: "Rejected by the issuer.",
    1005: "The URL or QR code expired.",
    1006: "The user denied the payment.",
}
# What the pay page can decline with (resultCode), in English; the template translates.
DECLINE_CODES = {
    1006: "User declined",
    1001: "Insufficient balance",
    1002: "Rejected by the issuer",
    1005: "Payment link expired",
}


@dataclass(frozen=True)
class Merchant:
    partner_code: str
    access_key: str
    secret_key: str


def merchant() -> Merchant | None:
    credentials = settings.PARTNER_CREDENTIALS.get("MOMO", {})
    if not all(credentials.get(name) for name in ("secret", "access_key", "partner_code")):
        return None
    return Merchant(
        partner_code=credentials["partner_code"],
        access_key=credentials["access_key"],
        secret_key=credentials["secret"],
    )


def _value(value: object) -> str:
    return "" if value is None else str(value)


def signature(values: Mapping[str, Any], names: list[str], shop: Merchant) -> str:
    raw = "&".join(
        f"{name}={shop.access_key if name == 'accessKey' else _value(values.get(name))}"
        for name in names
    )
    return hmac.new(shop.secret_key.encode(), raw.encode(), "sha256").hexdigest()


def signed_by(values: Mapping[str, Any], names: list[str], shop: Merchant) -> bool:
    given = _value(values.get("signature")).lower()
    return given.isascii() and hmac.compare_digest(signature(values, names, shop), given)


def _answer(code: int, body: Mapping[str, Any], **found: Any) -> dict[str, Any]:
    return {
        "partnerCode": _value(body.get("partnerCode")),
        "orderId": _value(body.get("orderId")),
        "requestId": _value(body.get("requestId")),
        "amount": body.get("amount"),
        "responseTime": int(timezone.now().timestamp() * 1000),
        "message": MESSAGES.get(code, "Unknown error."),
        "resultCode": code,
        **found,
    }


def _links(order: WalletOrder, base_url: str) -> dict[str, str]:
    return {
        # The web page, and what a phone's MoMo app would open (here: the sandbox's "app").
        "payUrl": f"{base_url}/sandbox/momo/pay/{order.token}/",
        "deeplink": f"{base_url}/sandbox/momo/app/{order.token}/",
        "qrCodeUrl": f"momo://app?action=payWithApp&sid={order.token}",
    }


def _web_url(value: object) -> bool:
    parts = urlsplit(_value(value))
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def create(body: Any, *, base_url: str) -> dict[str, Any]:
    """Answer a merchant's create call: the order, opened once per orderId; the same request
    (requestId) again gets the same answer."""
    shop = merchant()
    if not isinstance(body, dict):
        return _answer(20, {})
    if shop is None or body.get("partnerCode") != shop.partner_code:
        return _answer(11, body)
    if not signed_by(body, CREATE_SIGNED, shop):
        return _answer(13, body)
    amount = body.get("amount")
    if body.get("requestType") != "captureWallet" or not ORDER_ID.match(
        _value(body.get("orderId"))
    ):
        return _answer(20, body)
    if not all(_web_url(body.get(name)) for name in ("redirectUrl", "ipnUrl")):
        return _answer(20, body)
    if isinstance(amount, bool) or not isinstance(amount, int):
        return _answer(21, body)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        return _answer(22, body)
    fields = {
        "request_id": _value(body.get("requestId")),
        "amount": amount,
        "order_info": _value(body.get("orderInfo"))[:255],
        "redirect_url": _value(body.get("redirectUrl")),
        "notify_url": _value(body.get("ipnUrl")),
        "extra": {"extraData": _value(body.get("extraData")), "lang": _value(body.get("lang"))},
    }
    try:
        with transaction.atomic():
            order = WalletOrder.objects.create(
                wallet=WalletOrder.Wallet.MOMO,
                merchant=shop.partner_code,
                order_id=body["orderId"],
                token=secrets.token_urlsafe(24),
                **fields,
            )
    except IntegrityError:
        order = WalletOrder.objects.get(
            wallet=WalletOrder.Wallet.MOMO, merchant=shop.partner_code, order_id=body["orderId"]
        )
        if order.request_id != fields["request_id"] or order.amount != amount:
            return _answer(41, body)  # another request for the same order: never a second one
    return _answer(0, body, **_links(order, base_url))


def find(token: str) -> WalletOrder | None:
    return WalletOrder.objects.filter(wallet=WalletOrder.Wallet.MOMO, token=token).first()


def result(order: WalletOrder, shop: Merchant, *, pay_type: str = "qr") -> dict[str, Any]:
    """The signed result of an order, as the IPN carries it (JSON numbers for the numbers)."""
    values: dict[str, Any] = {
        "partnerCode": order.merchant,
        "orderId": order.order_id,
        "requestId": order.request_id,
        "amount": order.amount,
        "orderInfo": order.order_info,
        "orderType": "momo_wallet",
        "transId": int(order.trans_id or 0),
        "resultCode": int(order.result_code or 1000),
        "message": MESSAGES.get(int(order.result_code or 1000), "Unknown error."),
        "payType": pay_type,
        "responseTime": int((order.decided_at or timezone.now()).timestamp() * 1000),
        "extraData": order.extra.get("extraData", ""),
    }
    values["signature"] = signature(values, RESULT_SIGNED, shop)
    return values


def return_url(order: WalletOrder, shop: Merchant) -> str:
    """Where the browser goes back: the redirect URL with the same fields, signed the same way."""
    separator = "&" if "?" in order.redirect_url else "?"
    params = {name: str(value) for name, value in result(order, shop, pay_type="webApp").items()}
    params["signature"] = signature(params, RESULT_SIGNED, shop)
    return f"{order.redirect_url}{separator}{urlencode(params)}"


def decide(
    *,
    order_id: Any,
    approve: bool,
    decline_code: int = 1006,
    ipn_mode: str = "deliver",
    now: datetime | None = None,
) -> WalletOrder:
    """The customer approved or declined in MoMo: record it once and queue the IPN (MoMo
    notifies the merchant of both)."""
    shop = merchant()
    if shop is None:
        raise bank.Refused("11", "The sandbox MoMo has no merchant configured.")
    now = now or timezone.now()
    with transaction.atomic():
        order = WalletOrder.objects.select_for_update().get(pk=order_id)
        if order.state != BankTransaction.State.OPEN:
            return order
        order.state = BankTransaction.State.APPROVED if approve else BankTransaction.State.DECLINED
        order.result_code = (
            "0" if approve else str(decline_code if decline_code in DECLINE_CODES else 1006)
        )
        order.trans_id = str(4_000_000_000 + secrets.randbelow(10**9)) if approve else ""
        order.decided_at = now
        order.ipn_mode = ipn_mode
        order.save()
        _queue(order, result(order, shop), ipn_mode=ipn_mode, now=now)
    return order


def _queue(order: WalletOrder, payload: dict[str, Any], *, ipn_mode: str, now: datetime) -> None:
    if ipn_mode == BankTransaction.IpnMode.DROP:
        state, due = Notification.State.DROPPED, now
    elif ipn_mode == BankTransaction.IpnMode.DELAY:
        state, due = Notification.State.PENDING, now + bank.ipn_delay()
    else:
        state, due = Notification.State.PENDING, now
    Notification.objects.create(
        kind=Notification.Kind.MOMO_IPN,
        order=order,
        url=order.notify_url,
        payload=payload,
        state=state,
        next_attempt_at=due,
    )


def query(body: Any) -> dict[str, Any]:
    """Answer a merchant's status query: the order's resultCode (1000 while it waits)."""
    shop = merchant()
    if not isinstance(body, dict):
        return _answer(20, {})
    if shop is None or body.get("partnerCode") != shop.partner_code:
        return _answer(11, body)
    if not signed_by(body, QUERY_SIGNED, shop):
        return _answer(13, body)
    order = WalletOrder.objects.filter(
        wallet=WalletOrder.Wallet.MOMO, merchant=shop.partner_code, order_id=body.get("orderId")
    ).first()
    if order is None:
        return _answer(42, body)
    code = int(order.result_code or 1000)
    return _answer(
        code,
        body,
        amount=order.amount,
        transId=int(order.trans_id or 0),
        payType="qr" if order.decided_at else "",
        extraData=order.extra.get("extraData", ""),
        lastUpdated=int((order.decided_at or order.created_at).timestamp() * 1000),
    )
