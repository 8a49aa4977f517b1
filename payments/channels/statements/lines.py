"""Reading a bank statement's lines (docs/interfaces.md, "Statements") into credits.

`manage.py import_statement` reads a file with these and has the applier apply its lines as
they arrive; the applier hands lines stored earlier (a failed attempt) to `apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from payments import matching
from payments.channels.transfers.notifications import (
    MAX_ACCOUNT,
    MAX_AMOUNT,
    MAX_CONTENT,
    MAX_EXTERNAL_ID,
    TransferSource,
    account_field,
    parse_bank_time,
    text_field,
)
from payments.inbox import Applied, Claimed
from payments.matching import Credit, InvalidCredit

STATEMENT_COLUMNS = ("transaction_id", "account_number", "transaction_date", "amount", "content")


def credit_from_statement_row(row: Mapping[str, Any]) -> Credit:
    """Check one statement line (docs/interfaces.md); a negative amount is a debit.

    Raises InvalidCredit naming every bad column.
    """
    errors: dict[str, list[str]] = {}
    external_id = account = content = ""
    occurred_at: datetime | None = None
    amount = 0
    # Plain sequential checks: a statement has a hundred thousand lines.
    try:
        external_id = text_field(row, "transaction_id", limit=MAX_EXTERNAL_ID, required=True)
    except ValueError as exc:
        errors["transaction_id"] = [str(exc)]
    try:
        account = account_field(text_field(row, "account_number", limit=MAX_ACCOUNT, required=True))
    except ValueError as exc:
        errors["account_number"] = [str(exc)]
    try:
        occurred_at = parse_bank_time(row.get("transaction_date"))
    except ValueError as exc:
        errors["transaction_date"] = [str(exc)]
    try:
        amount = _statement_amount(row.get("amount"))
    except ValueError as exc:
        errors["amount"] = [str(exc)]
    try:
        content = text_field(row, "content", limit=MAX_CONTENT, required=False)
    except ValueError as exc:
        errors["content"] = [str(exc)]
    if errors or occurred_at is None:
        raise InvalidCredit(errors)
    return Credit(
        source=TransferSource.STATEMENT,
        external_id=external_id,
        account_number=account,
        amount=abs(amount),
        outgoing=amount < 0,
        content=content,
        occurred_at=occurred_at,
    )


def _statement_amount(value: Any) -> int:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError("must be a whole number of VND")
    text = str(value).strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("must be a whole number of VND, without separators")
    amount = int(text)
    if amount == 0 or abs(amount) > MAX_AMOUNT:
        raise ValueError("must not be zero and at most 13 digits")
    return amount


# Made once: `json.dumps(..., ensure_ascii=False)` makes an encoder per call.
_encode_body = json.JSONEncoder(ensure_ascii=False).encode


def statement_body(row: Mapping[str, Any], *, file: str = "", line: int = 0) -> str:
    """The inbox body of a statement line: its fields as read, and where it came from."""
    body = {name: row.get(name) for name in STATEMENT_COLUMNS}
    body.update(file=file, line=line)
    return _encode_body(body)


def statement_dedupe_key(credit: Credit) -> str:
    return f"statement:{credit.account_number}:{credit.external_id}"


def read_line(body: str) -> Credit:
    """The credit a stored statement line reports."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidCredit({"body": ["is not JSON"]}) from None
    if not isinstance(data, dict):
        raise InvalidCredit({"body": ["must be a JSON object"]})
    return credit_from_statement_row(data)


def apply(messages: Sequence[Claimed], parsed: Mapping[int, Credit]) -> dict[int, Applied]:
    """The applier's channel for statement lines."""
    return matching.apply_credits(messages, read=read_line, parsed=parsed)
