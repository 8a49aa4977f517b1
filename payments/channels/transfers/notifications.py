"""Reading a bank-transfer notification (SePay shape, docs/protocols.md §3) into a credit, and
the fields every bank-credit message shares (GMT+7 times, whole VND, account numbers, text).

The applier hands stored notifications to `apply`, which reads each body and has the ledger
match them (`payments.matching.apply_credits`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from common.localtime import GMT7
from payments import matching
from payments.inbox import Applied, Claimed
from payments.matching import Credit, InvalidCredit
from payments.models import BankTransfer

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_CONTENT = 1000
MAX_EXTERNAL_ID = 100  # BankTransfer.external_id
MAX_ACCOUNT = 32  # BankTransfer.account_number
MAX_AMOUNT = 10**13 - 1  # 13 digits, VietQR's own limit

TransferSource = BankTransfer.Source
_BANK_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse_bank_time(value: Any) -> datetime:
    """'YYYY-MM-DD HH:MM:SS' in GMT+7, as banks write it, to an aware datetime."""
    # A regex rather than strptime: a statement has a hundred thousand of these.
    match = _BANK_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must look like 2024-05-21 14:02:37 (GMT+7)")
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=GMT7)
    except ValueError:
        raise ValueError("is not a real date and time") from None


def _whole_number(value: Any) -> int:
    # JSON has one number type: 2277000 and 2277000.0 are the same amount; 12.5 is not dong.
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


def text_field(data: Mapping[str, Any], name: str, *, limit: int, required: bool) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise ValueError("is required")
        return ""
    if not isinstance(value, str):
        raise ValueError("must be text")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")  # PostgreSQL text cannot hold them
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no database can store it
        raise ValueError("must be valid Unicode text") from None
    value = value.strip()
    if required and not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def account_field(value: str) -> str:
    if not value.isascii() or not value.isalnum():
        raise ValueError("must be letters and digits only")
    return value


def credit_from_notification(data: Any) -> tuple[str, Credit]:
    """Check a SePay-shaped notification (docs/protocols.md §3); returns (sender id, credit).

    Raises InvalidCredit naming every bad field, so the sender is told all at once.
    """
    if not isinstance(data, dict):
        raise InvalidCredit({"body": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}

    def check(name: str, read: Any) -> None:
        try:
            values[name] = read()
        except ValueError as exc:
            errors[name] = [str(exc)]

    def read_id() -> str:
        number = _whole_number(data.get("id"))
        if not 0 < number < 2**63:
            raise ValueError("must be a positive 64-bit number")
        return str(number)

    def read_amount() -> int:
        amount = _whole_number(data.get("transferAmount"))
        if not 0 < amount <= MAX_AMOUNT:
            raise ValueError("must be a positive whole number of VND")
        return amount

    def read_type() -> str:
        value = data.get("transferType")
        if value not in ("in", "out"):
            raise ValueError('must be "in" or "out"')
        return str(value)

    check("id", read_id)
    check("transactionDate", lambda: parse_bank_time(data.get("transactionDate")))
    check(
        "accountNumber",
        lambda: account_field(text_field(data, "accountNumber", limit=MAX_ACCOUNT, required=True)),
    )
    check("transferType", read_type)
    check("transferAmount", read_amount)
    check("content", lambda: text_field(data, "content", limit=MAX_CONTENT, required=False))
    check("referenceCode", lambda: text_field(data, "referenceCode", limit=80, required=False))
    for optional in ("gateway", "code", "subAccount", "description"):
        check(
            optional,
            lambda name=optional: text_field(data, name, limit=MAX_CONTENT, required=False),
        )
    if "accumulated" in data and data["accumulated"] is not None:
        check("accumulated", lambda: _whole_number(data["accumulated"]))
    if errors:
        raise InvalidCredit(errors)
    sender_id = values["id"]
    return sender_id, Credit(
        source=TransferSource.WEBHOOK,
        # The bank's reference makes a statement line of the same credit the same row; without
        # one, the sender's id is all there is.
        external_id=values["referenceCode"] or f"sepay:{sender_id}",
        account_number=values["accountNumber"],
        amount=values["transferAmount"],
        outgoing=values["transferType"] == "out",
        content=values["content"],
        occurred_at=values["transactionDate"],
    )


def read_notification(body: str) -> Credit:
    """The credit a stored notification reports."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidCredit({"body": ["is not JSON"]}) from None
    return credit_from_notification(data)[1]


def apply(messages: Sequence[Claimed], parsed: Mapping[int, Credit]) -> dict[int, Applied]:
    """The applier's channel for stored notifications."""
    return matching.apply_credits(messages, read=read_notification, parsed=parsed)
