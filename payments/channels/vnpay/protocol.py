"""The VNPay 2.1.0 redirect protocol, spoken to every partner of kind `gateway`. No Django.

Signing: sort the vnp_* parameters by name, join `name=quote_plus(value)` with '&', HMAC-SHA512
with the partner's secret, lower-case hex. Verifying uses the values exactly as received: never a
value we parsed, rescaled or re-formatted (docs/protocols.md §2, "known traps").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote_plus

from common.localtime import GMT7
from payments.channels.common.results import Result
from payments.channels.common.signing import hmac_sha512, same_signature

VERSION = "2.1.0"
TIME_FORMAT = "%Y%m%d%H%M%S"
_UNSIGNED = frozenset({"vnp_SecureHash", "vnp_SecureHashType"})

# IPN answers, in the order the checks run (docs/protocols.md §2).
RSP_INVALID_SIGNATURE = ("97", "Invalid signature")
# The protocol has no code of its own for a message addressed to another terminal: for us such
# an order does not exist, so it is answered like an unknown order.
RSP_WRONG_TERMINAL = ("01", "Order not found")
RSP_ORDER_NOT_FOUND = ("01", "Order not found")
RSP_INVALID_AMOUNT = ("04", "Invalid amount")
RSP_ALREADY_CONFIRMED = ("02", "Order already confirmed")
RSP_CONFIRM_SUCCESS = ("00", "Confirm Success")
RSP_UNKNOWN_ERROR = ("99", "Unknown error")

# vnp_ResponseCode of a payment (return URL, IPN), in English; the portal translates them.
RESPONSE_CODES = {
    "00": "Successful",
    "07": "Money debited, transaction flagged as suspicious",
    "09": "Internet banking is not enabled for this account",
    "10": "Authentication failed three times",
    "11": "The payment window expired",
    "12": "The account is locked",
    "13": "Wrong one-time password (OTP)",
    "24": "Cancelled by the customer",
    "51": "Insufficient balance",
    "65": "Daily limit exceeded",
    "75": "The bank is under maintenance",
    "79": "Wrong password entered too many times",
    "99": "Other error",
}

# Response codes that say the payment did not happen (everything but success and "suspicious").
FAILURE_CODES = frozenset(RESPONSE_CODES) - {"00", "07"}

# vnp_ResponseCode of a querydr answer: about the query itself, not the payment.
QUERY_OK = "00"

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
    return moment.astimezone(GMT7).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A protocol timestamp (GMT+7) as an aware datetime; ValueError when malformed."""
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=GMT7)


def parse_amount(text: str) -> int:
    """vnp_Amount (hundredths of a dong, as digits) in whole VND; ValueError otherwise."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"vnp_Amount is not a whole number: {text!r}")
    hundredths = int(text)
    if hundredths % 100:
        raise ValueError(f"vnp_Amount is not a whole number of dong: {text!r}")
    return hundredths // 100


def new_request_id() -> str:
    """A querydr vnp_RequestId: at most 32 characters and unique per day (32 random hex)."""
    return uuid.uuid4().hex


def string_to_sign(params: Mapping[str, str]) -> str:
    """Sorted vnp_* parameters (without the hash) as `name=quote_plus(value)` joined by '&'."""
    return "&".join(
        f"{name}={quote_plus(str(params[name]))}"
        for name in sorted(params)
        if name.startswith("vnp_") and name not in _UNSIGNED
    )


def sign(params: Mapping[str, str], secret: str) -> str:
    return hmac_sha512(secret, string_to_sign(params))


def verify(params: Mapping[str, str], secret: str) -> bool:
    """Check a return or IPN: the received values, as received, signed with our secret."""
    received = str(params.get("vnp_SecureHash", ""))
    if not received or not secret:
        return False
    return same_signature(sign(params, secret), received)


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
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("the amount is a positive whole number of dong")
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
    # The query string is the signed string itself, so what the bank reads is what we signed.
    query = string_to_sign(params)
    separator = "&" if "?" in config.pay_url else "?"
    return f"{config.pay_url}{separator}{query}&vnp_SecureHash={sign(params, config.secret)}"


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
    body["vnp_SecureHash"] = hmac_sha512(
        config.secret, "|".join(body.get(name, "") for name in QUERY_REQUEST_FIELDS)
    )
    return body


def _field(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    return "" if value is None else str(value)


def sign_query_response(body: Mapping[str, object], secret: str) -> str:
    """The hash of a querydr answer: its fields in protocol order, missing ones empty."""
    return hmac_sha512(secret, "|".join(_field(body, name) for name in QUERY_RESPONSE_FIELDS))


def verify_query_response(body: Mapping[str, object], secret: str) -> bool:
    received = _field(body, "vnp_SecureHash")
    if not received or not secret:
        return False
    return same_signature(sign_query_response(body, secret), received)


def transaction_result(response_code: str, transaction_status: str) -> Result:
    """Classify a payment report (return URL, IPN) by its response code and status."""
    if response_code == "00" and transaction_status == "00":
        return Result.SUCCESS
    if response_code == "07" or transaction_status in ("04", "05", "06", "07", "09"):
        # Debited but suspicious, reversed, refunds: money may have moved; never "failed".
        return Result.REVIEW
    if transaction_status == "01":
        return Result.PENDING
    if transaction_status == "02" or (transaction_status == "" and response_code in FAILURE_CODES):
        return Result.FAILED
    return Result.REVIEW


def query_result(body: Mapping[str, object]) -> Result | None:
    """What a querydr answer says about the payment; None when it says nothing about it.

    The answer's own vnp_ResponseCode is about the query (91: the bank has no such payment yet,
    94: duplicate request, ...): only a `00` answer carries the transaction's status.
    """
    if _field(body, "vnp_ResponseCode") != QUERY_OK:
        return None
    status = _field(body, "vnp_TransactionStatus")
    if status == "00":
        return Result.SUCCESS
    if status == "01":
        return Result.PENDING
    if status == "02":
        return Result.FAILED
    return Result.REVIEW
