"""MoMo's payment gateway, API v2, request type captureWallet (docs/protocols.md §4). No Django.

Signing: HMAC-SHA256 with the partner's secret key, lower-case hex, over `name=value` pairs
joined with '&', the names in a fixed alphabetical order, the values unescaped and exactly as
sent or received (an amount of 1000 is signed as `1000`). Amounts are whole dong: no ×100.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from payments.channels.common.results import Result
from payments.channels.common.signing import hmac_sha256, same_signature
from payments.channels.common.signing import signed_text as text

REQUEST_TYPE = "captureWallet"
CREATE_PATH = "/v2/gateway/api/create"
QUERY_PATH = "/v2/gateway/api/query"

# The names signed, in their order, for each message.
CREATE_FIELDS = (
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
)
# The IPN and the browser's return carry the same fields, signed the same way.
RESULT_FIELDS = (
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
)
QUERY_FIELDS = ("accessKey", "orderId", "partnerCode", "requestId")

# resultCode: its meaning, and what it says about the payment. One table for every message (the
# create answer, the IPN, the return, the status answer). None: the code is about the request
# itself and says nothing about the payment. From MoMo's public result-code list; 0, 9000,
# 7000/7002, 1001 and 1006 are also in docs/protocols.md §4.
RESULT_CODES: dict[int, tuple[str, Result | None]] = {
    0: ("Successful", Result.SUCCESS),
    # Authorised, not captured yet: captureWallet captures at once and reports 0 then.
    9000: ("Authorised", Result.PENDING),
    8000: ("Waiting for the user to confirm again", Result.PENDING),
    7000: ("Being processed", Result.PENDING),
    7002: ("Being processed by the payment instrument's provider", Result.PENDING),
    # Not a failure, despite the 1000 series: the order waits for the user.
    1000: ("Initiated, waiting for the user to confirm", Result.PENDING),
    1001: ("Insufficient balance", Result.FAILED),
    1002: ("Rejected by the issuer of the payment instrument", Result.FAILED),
    1003: ("Cancelled after authorisation", Result.FAILED),
    1004: ("Over the user's payment limit", Result.FAILED),
    1005: ("The payment link or QR code expired", Result.FAILED),
    1006: ("The user declined the payment", Result.FAILED),
    1007: ("The user's account is inactive or does not exist", Result.FAILED),
    1017: ("Cancelled by the merchant", Result.FAILED),
    1026: ("Restricted by promotion rules", Result.FAILED),
    # Refunds of a payment that went through: money moved, a person must look.
    1080: ("Refund failed in processing", Result.REVIEW),
    1081: ("Refund rejected", Result.REVIEW),
    4001: ("The user's account is restricted", Result.FAILED),
    4002: ("The user's account is not verified", Result.FAILED),
    4100: ("The user did not sign in", Result.FAILED),
    10: ("System under maintenance", None),
    11: ("Access denied", None),
    12: ("Unsupported API version", None),
    13: ("Merchant authentication failed", None),
    20: ("Bad request format", None),
    21: ("Invalid amount", None),
    22: ("Amount out of range", None),
    40: ("Duplicate requestId", None),
    41: ("Duplicate orderId", None),
    42: ("Invalid orderId, or no such order", None),
    43: ("A similar transaction is being processed", None),
    45: ("Duplicate itemId", None),
    47: ("Inapplicable information", None),
    98: ("QR code not created", None),
    99: ("Unknown error", None),
}
SUCCESS = 0
# Create answers that say no order was opened: nothing can be paid there, so the payment fails
# and the household may start again at once. Any other refusal (40, 41, 43, 99, no answer) may
# hide an order that exists: the payment stays open for the status query.
NOT_CREATED = frozenset({10, 11, 12, 13, 20, 21, 22, 42, 45, 47, 98})


@dataclass(frozen=True)
class Config:
    partner_code: str
    access_key: str
    secret_key: str
    api_url: str  # {MOMO_API}: the paths above are appended to it


def raw(values: Mapping[str, Any], fields: Iterable[str], access_key: str) -> str:
    """The string to sign: `name=value` for each field, in order, joined with '&'."""
    return "&".join(
        f"{name}={access_key if name == 'accessKey' else text(values.get(name))}" for name in fields
    )


def sign(values: Mapping[str, Any], fields: Iterable[str], config: Config) -> str:
    return hmac_sha256(config.secret_key, raw(values, fields, config.access_key))


def verify_result(values: Mapping[str, Any], config: Config) -> bool:
    """Check an IPN or a return over its values exactly as received."""
    if not config.secret_key:
        return False
    return same_signature(sign(values, RESULT_FIELDS, config), values.get("signature"))


def result_code(value: object) -> int | None:
    """resultCode as a number (JSON sends one; a return's query string, its digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.isascii():
        return int(value.strip())
    return None


def result_of(code: int | None) -> Result | None:
    """What a resultCode says about the payment; None when it is about the request only.

    Codes missing from the table follow the facts we have: the 1000 and 4000 series are
    failures; anything else is for a person to look at."""
    if code in RESULT_CODES:
        return RESULT_CODES[code][1]
    if code is not None and (1000 <= code < 2000 or 4000 <= code < 5000):
        return Result.FAILED
    return Result.REVIEW


def meaning(code: int | None) -> str:
    return RESULT_CODES[code][0] if code in RESULT_CODES else "unknown code"


def parse_amount(value: object) -> int:
    """An amount as MoMo sends it (a JSON number, or digits in a return) in whole VND."""
    if isinstance(value, bool):
        raise ValueError("the amount is not a number")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        amount = int(value)
    else:
        raise ValueError(f"the amount is not a whole number: {value!r}")
    if amount < 0:
        raise ValueError("the amount is negative")
    return amount


def create_request(
    config: Config,
    *,
    request_id: str,
    order_id: str,
    amount: int,
    order_info: str,
    redirect_url: str,
    ipn_url: str,
    lang: str,
    extra_data: str = "",
) -> dict[str, Any]:
    """A signed create body (captureWallet). `order_id` is our payment reference: MoMo opens one
    order per orderId, and repeats its answer to the same requestId, so sending this body again
    can never open a second order."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("the amount is a positive whole number of dong")
    body: dict[str, Any] = {
        "partnerCode": config.partner_code,
        "requestId": request_id,
        "amount": amount,
        "orderId": order_id,
        "orderInfo": order_info,
        "redirectUrl": redirect_url,
        "ipnUrl": ipn_url,
        "lang": "en" if lang == "en" else "vi",
        "extraData": extra_data,
        "requestType": REQUEST_TYPE,
    }
    body["signature"] = sign(body, CREATE_FIELDS, config)
    return body


def query_request(config: Config, *, request_id: str, order_id: str, lang: str = "vi") -> dict:
    body = {
        "partnerCode": config.partner_code,
        "requestId": request_id,
        "orderId": order_id,
        "lang": "en" if lang == "en" else "vi",
    }
    body["signature"] = sign(body, QUERY_FIELDS, config)
    return body
