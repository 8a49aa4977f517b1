"""ZaloPay's order API, v2 (docs/protocols.md §4). No Django.

Two keys: KEY1 signs what we send (create, query), KEY2 what ZaloPay sends (the callback, the
browser's return). Each MAC is HMAC-SHA256, lower-case hex, over values joined with '|' in a
fixed order; the callback's over its `data` string exactly as received. Amounts are whole dong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.localtime import GMT7
from payments.channels.common.results import Result
from payments.channels.common.signing import hmac_sha256, same_signature
from payments.channels.common.signing import signed_text as text

CREATE_PATH = "/v2/create"
QUERY_PATH = "/v2/query"

CREATE_MAC_FIELDS = (
    "app_id",
    "app_trans_id",
    "app_user",
    "amount",
    "app_time",
    "embed_data",
    "item",
)
RETURN_FIELDS = ("appid", "apptransid", "pmcid", "bankcode", "amount", "discountamount", "status")
# The callback's type: 1 an order (ours), 2 an agreement.
ORDER_CALLBACK = 1
_APP_TRANS_ID = re.compile(r"([0-9]{6})_([A-Za-z0-9_.-]{1,33})")

# Answers to a callback, as (return_code, return_message).
ANSWER_SUCCESS = (1, "success")
ANSWER_ALREADY = (2, "already processed")  # a repeat, or a payment already final
ANSWER_BAD_MAC = (-1, "mac not equal")
ANSWER_RETRY = (0, "try again")  # not stored: ZaloPay sends it again (up to 3 times)
# ZaloPay has no code of its own for these: the message is kept (for an agent where money
# moved), and sending it again would change nothing.
ANSWER_NOT_FOUND = (1, "order not found: kept")
ANSWER_WRONG_AMOUNT = (1, "invalid amount: kept for review")

# return_code of a create answer, and of a status answer: one table. The status answer's codes
# say what became of the order (1 paid, 2 failed, 3 still processing).
CREATED = 1
QUERY_CODES: dict[int, tuple[str, Result]] = {
    1: ("Paid", Result.SUCCESS),
    2: ("Failed", Result.FAILED),
    3: ("Processing, or not paid yet", Result.PENDING),
}
# A status answer 2 whose sub_return_code says ZaloPay has no such order yet, or that the request
# itself was refused (bad parameters, a MAC it did not accept, its own error, maintenance) says
# nothing about the order: a wrong key must never fail a household's payment, nor an order
# ZaloPay has not seen yet. The sub-codes are the ones ZaloPay publishes for its other query
# (disbursement): assumed to hold here.
QUERY_SAYS_NOTHING = frozenset({-101, -401, -402, -500, -503})
# A create answer 2 whose sub_return_code says the request was refused (bad parameters, a MAC
# not accepted, maintenance): no order was opened. Any other 2 may hide an order that exists.
CREATE_REFUSED = frozenset({-401, -402, -503})
# A browser return's `status`: 1 is success; other values are error codes we have no list of,
# so the page only says "waiting" and the status query tells.
RETURN_SUCCESS = "1"


@dataclass(frozen=True)
class Config:
    app_id: str
    key1: str
    key2: str
    api_url: str  # {ZALOPAY_API}: the paths above are appended to it


def app_trans_id(reference: str, moment: datetime) -> str:
    """`yyMMdd_` (the date in GMT+7) + our payment reference: unique, and it names the payment."""
    if moment.tzinfo is None:
        raise ValueError("app_trans_id needs an aware datetime")
    return f"{moment.astimezone(GMT7):%y%m%d}_{reference}"


def reference_of(value: object) -> str:
    """Our payment reference in an app_trans_id; "" when it is not one of ours."""
    match = _APP_TRANS_ID.fullmatch(text(value))
    return match.group(2) if match else ""


def piped(values: Mapping[str, Any], fields: tuple[str, ...]) -> str:
    return "|".join(text(values.get(name)) for name in fields)


def create_request(
    config: Config,
    *,
    app_trans_id: str,
    app_user: str,
    app_time: int,
    amount: int,
    description: str,
    callback_url: str,
    redirect_url: str,
    expire_seconds: int | None = None,
) -> dict[str, str]:
    """A signed create body (sent form-encoded). ZaloPay opens one order per app_trans_id (our
    payment reference): sending it again can never open a second one."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("the amount is a positive whole number of dong")
    body = {
        "app_id": config.app_id,
        "app_user": app_user,
        "app_trans_id": app_trans_id,
        "app_time": str(app_time),
        "amount": str(amount),
        "item": "[]",
        "embed_data": json.dumps({"redirecturl": redirect_url}, separators=(",", ":")),
        "description": description,
        "callback_url": callback_url,
    }
    if expire_seconds is not None:
        body["expire_duration_seconds"] = str(expire_seconds)
    body["mac"] = hmac_sha256(config.key1, piped(body, CREATE_MAC_FIELDS))
    return body


def query_request(config: Config, *, app_trans_id: str) -> dict[str, str]:
    return {
        "app_id": config.app_id,
        "app_trans_id": app_trans_id,
        "mac": hmac_sha256(config.key1, f"{config.app_id}|{app_trans_id}|{config.key1}"),
    }


def verify_callback(data: object, mac: object, config: Config) -> bool:
    """The callback's MAC, over its `data` string exactly as received, with KEY2."""
    if not isinstance(data, str) or not config.key2:
        return False
    return same_signature(hmac_sha256(config.key2, data), mac)


def verify_return(params: Mapping[str, str], config: Config) -> bool:
    if not config.key2:
        return False
    return same_signature(
        hmac_sha256(config.key2, piped(params, RETURN_FIELDS)), params.get("checksum")
    )


def number(value: object) -> int | None:
    """A whole number as ZaloPay writes it (a JSON number, or digits); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def query_result(answer: Mapping[str, Any]) -> Result | None:
    """What a status answer says about the order; None when it says nothing about it."""
    code = number(answer.get("return_code"))
    if code not in QUERY_CODES:
        return None
    if code == 2 and number(answer.get("sub_return_code")) in QUERY_SAYS_NOTHING:
        return None
    if code == 2 and answer.get("is_processing") is True:
        return Result.PENDING
    return QUERY_CODES[code][1]
