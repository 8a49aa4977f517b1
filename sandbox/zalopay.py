"""The sandbox's ZaloPay wallet: its side of ZaloPay's API v2, written independently of the
portal (the sandbox must catch the portal's mistakes, not repeat them).

It knows the portal as a merchant with an app id and two keys
(`settings.PARTNER_CREDENTIALS["ZALOPAY"]`): KEY1 checks what the merchant sends, KEY2 signs
what the wallet sends. MACs are HMAC-SHA256 over values joined with '|'.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandbox import bank, protocol
from sandbox.models import BankTransaction, Notification, WalletOrder

CREATE_MAC = ["app_id", "app_trans_id", "app_user", "amount", "app_time", "embed_data", "item"]
RETURN_MAC = ["appid", "apptransid", "pmcid", "bankcode", "amount", "discountamount", "status"]
APP_TRANS_ID = re.compile(r"^([0-9]{2})([0-9]{2})([0-9]{2})_[0-9A-Za-z_.-]{1,33}$")
# A declined payment's return status. ZaloPay's own error codes are not in our facts: any value
# but 1 means "not paid".
DECLINED_STATUS = "-1"
PAYMENT_CHANNEL = "38"  # the ZaloPay wallet


@dataclass(frozen=True)
class Merchant:
    app_id: str
    key1: str
    key2: str


def merchant() -> Merchant | None:
    credentials = settings.PARTNER_CREDENTIALS.get("ZALOPAY", {})
    if not all(credentials.get(name) for name in ("key1", "key2", "app_id")):
        return None
    return Merchant(
        app_id=credentials["app_id"], key1=credentials["key1"], key2=credentials["key2"]
    )


def _value(value: object) -> str:
    return "" if value is None else str(value)


def mac(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), "sha256").hexdigest()


def _mac_matches(expected: str, given: object) -> bool:
    given_text = _value(given).lower()
    return given_text.isascii() and hmac.compare_digest(expected, given_text)


def _refused(sub_code: int, message: str) -> dict[str, Any]:
    return {
        "return_code": 2,
        "return_message": "Giao dịch thất bại",
        "sub_return_code": sub_code,
        "sub_return_message": message,
    }


def _today_or_yesterday(match: re.Match[str], now: datetime) -> bool:
    """The app_trans_id's date (GMT+7): today's, or yesterday's for a call made at midnight."""
    stamp = f"{match.group(1)}{match.group(2)}{match.group(3)}"
    local = now.astimezone(protocol.VIETNAM)
    return stamp in {f"{local:%y%m%d}", f"{local - timedelta(days=1):%y%m%d}"}


def create(body: Mapping[str, Any], *, base_url: str, now: datetime | None = None) -> dict:
    """Answer a merchant's create call (form or JSON): one order per app_trans_id."""
    shop = merchant()
    now = now or timezone.now()
    if shop is None or _value(body.get("app_id")) != shop.app_id:
        return _refused(-402, "Unauthorized")
    expected = mac(shop.key1, "|".join(_value(body.get(name)) for name in CREATE_MAC))
    if not _mac_matches(expected, body.get("mac")):
        return _refused(-402, "Unauthorized: mac not equal")
    trans_id = _value(body.get("app_trans_id"))
    match = APP_TRANS_ID.match(trans_id)
    amount = _value(body.get("amount"))
    try:
        embed = json.loads(_value(body.get("embed_data")) or "{}")
        json.loads(_value(body.get("item")) or "[]")
    except ValueError:
        return _refused(-401, "Request param illegal: embed_data, item")
    redirect_to = embed.get("redirecturl", "") if isinstance(embed, dict) else ""
    callback = _value(body.get("callback_url"))
    if (
        match is None
        or not _today_or_yesterday(match, now)
        or not (amount.isascii() and amount.isdigit() and int(amount) > 0)
        or urlsplit(str(redirect_to)).scheme not in ("http", "https")
        or urlsplit(callback).scheme not in ("http", "https")
    ):
        return _refused(-401, "Request param illegal")
    try:
        with transaction.atomic():
            order = WalletOrder.objects.create(
                wallet=WalletOrder.Wallet.ZALOPAY,
                merchant=shop.app_id,
                order_id=trans_id,
                amount=int(amount),
                order_info=_value(body.get("description"))[:255],
                redirect_url=str(redirect_to),
                notify_url=callback,
                extra={
                    "app_user": _value(body.get("app_user")),
                    "app_time": _value(body.get("app_time")),
                    "embed_data": _value(body.get("embed_data")),
                    "item": _value(body.get("item")),
                },
                token=secrets.token_urlsafe(18),
            )
    except IntegrityError:
        return _refused(-68, "Duplicate app_trans_id")
    return {
        "return_code": 1,
        "return_message": "Giao dịch thành công",
        "sub_return_code": 1,
        "sub_return_message": "Giao dịch thành công",
        "zp_trans_token": order.token,
        # On a phone ZaloPay's link opens its app; the sandbox's "app" is this page.
        "order_url": f"{base_url}/sandbox/zalopay/openinapp?{urlencode({'order': order.token})}",
        "order_token": order.token,
    }


def find(token: str) -> WalletOrder | None:
    return WalletOrder.objects.filter(wallet=WalletOrder.Wallet.ZALOPAY, token=token).first()


def callback(order: WalletOrder, shop: Merchant) -> dict[str, Any]:
    """The callback of a paid order: `data` a JSON string, its MAC with KEY2."""
    data = json.dumps(
        {
            "app_id": int(shop.app_id) if shop.app_id.isdigit() else shop.app_id,
            "app_trans_id": order.order_id,
            "app_time": int(order.extra.get("app_time") or 0),
            "app_user": order.extra.get("app_user", ""),
            "amount": order.amount,
            "embed_data": order.extra.get("embed_data", "{}"),
            "item": order.extra.get("item", "[]"),
            "zp_trans_id": int(order.trans_id),
            "server_time": int((order.decided_at or timezone.now()).timestamp() * 1000),
            "channel": int(PAYMENT_CHANNEL),
            "merchant_user_id": "sandbox-" + order.token[:12],
            "user_fee_amount": 0,
            "discount_amount": 0,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return {"data": data, "mac": mac(shop.key2, data), "type": 1}


def return_url(order: WalletOrder, shop: Merchant) -> str:
    """Where the browser goes back: the redirecturl with the order's result and its checksum."""
    params = {
        "appid": shop.app_id,
        "apptransid": order.order_id,
        "pmcid": PAYMENT_CHANNEL,
        "bankcode": "",
        "amount": str(order.amount),
        "discountamount": "0",
        "status": order.result_code or DECLINED_STATUS,
    }
    params["checksum"] = mac(shop.key2, "|".join(params[name] for name in RETURN_MAC))
    separator = "&" if "?" in order.redirect_url else "?"
    return f"{order.redirect_url}{separator}{urlencode(params)}"


def decide(
    *, order_id: Any, approve: bool, ipn_mode: str = "deliver", now: datetime | None = None
) -> WalletOrder:
    """The customer approved or declined in ZaloPay: record it once. ZaloPay calls the merchant
    back only for a paid order."""
    shop = merchant()
    if shop is None:
        raise bank.Refused("-402", "The sandbox ZaloPay has no merchant configured.")
    now = now or timezone.now()
    with transaction.atomic():
        order = WalletOrder.objects.select_for_update().get(pk=order_id)
        if order.state != BankTransaction.State.OPEN:
            return order
        order.state = BankTransaction.State.APPROVED if approve else BankTransaction.State.DECLINED
        order.result_code = "1" if approve else DECLINED_STATUS
        order.trans_id = f"{now.astimezone(protocol.VIETNAM):%y%m%d}{secrets.randbelow(10**9):09d}"
        order.decided_at = now
        order.ipn_mode = ipn_mode
        order.save()
        if approve:
            if ipn_mode == BankTransaction.IpnMode.DROP:
                state, due = Notification.State.DROPPED, now
            elif ipn_mode == BankTransaction.IpnMode.DELAY:
                state, due = Notification.State.PENDING, now + bank.ipn_delay()
            else:
                state, due = Notification.State.PENDING, now
            Notification.objects.create(
                kind=Notification.Kind.ZALOPAY_CALLBACK,
                order=order,
                url=order.notify_url,
                payload=callback(order, shop),
                state=state,
                next_attempt_at=due,
            )
    return order


def query(body: Mapping[str, Any]) -> dict[str, Any]:
    """Answer a merchant's status query: 1 paid, 2 failed, 3 still waiting."""
    shop = merchant()
    if shop is None or _value(body.get("app_id")) != shop.app_id:
        return _refused(-402, "Unauthorized")
    trans_id = _value(body.get("app_trans_id"))
    expected = mac(shop.key1, f"{shop.app_id}|{trans_id}|{shop.key1}")
    if not _mac_matches(expected, body.get("mac")):
        return _refused(-402, "Unauthorized: mac not equal")
    order = WalletOrder.objects.filter(
        wallet=WalletOrder.Wallet.ZALOPAY, merchant=shop.app_id, order_id=trans_id
    ).first()
    if order is None:
        return _refused(-101, "Order not found")
    if order.state == BankTransaction.State.OPEN:
        return {
            "return_code": 3,
            "return_message": "Giao dịch chưa thanh toán",
            "sub_return_code": -49,
            "sub_return_message": "Đơn hàng chưa được thanh toán",
            "is_processing": False,
            "amount": order.amount,
            "zp_trans_id": 0,
        }
    paid = order.state == BankTransaction.State.APPROVED
    return {
        "return_code": 1 if paid else 2,
        "return_message": "Giao dịch thành công" if paid else "Giao dịch thất bại",
        "sub_return_code": 1 if paid else -217,
        "sub_return_message": "" if paid else "Người dùng huỷ giao dịch",
        "is_processing": False,
        "amount": order.amount,
        "discount_amount": 0,
        "zp_trans_id": int(order.trans_id or 0),
        "server_time": int((order.decided_at or order.created_at).timestamp() * 1000),
    }
