"""The VNPay 2.1.0 redirect protocol, spoken to every partner of kind `gateway`. No Django.

Signing: sort the vnp_* parameters by name, join `name=quote_plus(value)` with '&', HMAC-SHA512
with the partner's secret, lower-case hex. Verifying uses the values exactly as received.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

VERSION = "2.1.0"
GMT7 = ZoneInfo("Asia/Ho_Chi_Minh")
_UNSIGNED = frozenset({"vnp_SecureHash", "vnp_SecureHashType"})

# IPN answers, in the order the checks run.
RSP_INVALID_SIGNATURE = ("97", "Invalid signature")
RSP_ORDER_NOT_FOUND = ("01", "Order not found")
RSP_INVALID_AMOUNT = ("04", "Invalid amount")
RSP_ALREADY_CONFIRMED = ("02", "Order already confirmed")
RSP_CONFIRM_SUCCESS = ("00", "Confirm Success")
RSP_UNKNOWN_ERROR = ("99", "Unknown error")

QUERY_REQUEST_FIELDS = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
QUERY_RESPONSE_FIELDS = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)


@dataclass(frozen=True)
class GatewayConfig:
    tmn_code: str
    secret: str
    pay_url: str
    api_url: str


def format_time(moment: datetime) -> str:
    """yyyyMMddHHmmss in GMT+7, whatever the server's own time zone."""
    if moment.tzinfo is None:
        raise ValueError("protocol timestamps need an aware datetime")
    return moment.astimezone(GMT7).strftime("%Y%m%d%H%M%S")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=GMT7)


def _hmac_sha512(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode("utf-8"), hashlib.sha512).hexdigest()


def string_to_sign(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{name}={quote_plus(str(params[name]))}"
        for name in sorted(params)
        if name.startswith("vnp_") and name not in _UNSIGNED
    )


def sign(params: Mapping[str, str], secret: str) -> str:
    return _hmac_sha512(secret, string_to_sign(params))


def verify(params: Mapping[str, str], secret: str) -> bool:
    """Check a return or IPN: the received values, as received, signed with our secret."""
    received = str(params.get("vnp_SecureHash", ""))
    if not received or not secret:
        return False
    expected = sign(params, secret)
    return hmac.compare_digest(expected.encode(), received.lower().encode())


def build_pay_url(
    config: GatewayConfig,
    *,
    txn_ref: str,
    amount: int,
    order_info: str,
    return_url: str,
    ip_address: str,
    created_at: datetime,
    expires_at: datetime,
    locale: str = "vn",
    bank_code: str = "",
) -> str:
    """The signed URL that sends the customer's browser to the partner's payment page."""
    params = {
        "vnp_Version": VERSION,
        "vnp_Command": "pay",
        "vnp_TmnCode": config.tmn_code,
        "vnp_Amount": str(amount * 100),  # the protocol counts in hundredths of a dong
        "vnp_CurrCode": "VND",
        "vnp_TxnRef": txn_ref,
        "vnp_OrderInfo": order_info,
        "vnp_OrderType": "billpayment",
        "vnp_Locale": "en" if locale == "en" else "vn",
        "vnp_ReturnUrl": return_url,
        "vnp_IpAddr": ip_address,
        "vnp_CreateDate": format_time(created_at),
        "vnp_ExpireDate": format_time(expires_at),
    }
    if bank_code:
        params["vnp_BankCode"] = bank_code
    query = string_to_sign(params)
    return f"{config.pay_url}?{query}&vnp_SecureHash={sign(params, config.secret)}"


def build_query_request(
    config: GatewayConfig,
    *,
    request_id: str,
    txn_ref: str,
    order_info: str,
    transaction_date: str,
    created_at: datetime,
    ip_address: str,
    transaction_no: str = "",
) -> dict[str, str]:
    """A signed `querydr` body; `transaction_date` is the pay request's vnp_CreateDate."""
    body = {
        "vnp_RequestId": request_id,
        "vnp_Version": VERSION,
        "vnp_Command": "querydr",
        "vnp_TmnCode": config.tmn_code,
        "vnp_TxnRef": txn_ref,
        "vnp_OrderInfo": order_info,
        "vnp_TransactionDate": transaction_date,
        "vnp_CreateDate": format_time(created_at),
        "vnp_IpAddr": ip_address,
    }
    if transaction_no:
        body["vnp_TransactionNo"] = transaction_no
    body["vnp_SecureHash"] = _hmac_sha512(
        config.secret, "|".join(body.get(name, "") for name in QUERY_REQUEST_FIELDS)
    )
    return body


def sign_query_response(body: Mapping[str, str], secret: str) -> str:
    return _hmac_sha512(
        secret, "|".join(str(body.get(name, "") or "") for name in QUERY_RESPONSE_FIELDS)
    )


def verify_query_response(body: Mapping[str, str], secret: str) -> bool:
    received = str(body.get("vnp_SecureHash", ""))
    if not received or not secret:
        return False
    return hmac.compare_digest(sign_query_response(body, secret).encode(), received.encode())


def is_success(params: Mapping[str, str]) -> bool:
    return params.get("vnp_ResponseCode") == "00" and params.get("vnp_TransactionStatus") == "00"


def encode_query(params: Mapping[str, str]) -> str:
    return urlencode(params)
