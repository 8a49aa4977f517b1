"""The rules a billing file's rows must follow, and the words an operator reads when one does not.

Both loaders apply these rules: the row-by-row one here (`validate_row`, for SQLite, the embedded
default) and the set-based one in PostgreSQL (`postgres.py`), whose SQL mirrors every rule below in
the same order. The messages come from one table, `REASONS`, whichever loader found the problem.
"""

from __future__ import annotations

import datetime
import re
import string
from dataclasses import dataclass

from customers.codes import customer_code_pattern, normalise

COLUMNS = (
    "customer_code",
    "customer_name",
    "address",
    "service_area",
    "phone",
    "email",
    "bill_number",
    "period",
    "kwh",
    "amount",
    "due_date",
)

# Stripped from both ends of every value; spelled out so that PostgreSQL's btrim strips the same.
BLANKS = " \t\n\r\x0b\x0c\u00a0\u3000\ufeff"
# Patterns without counted repetition ({n,m}), with the lengths checked apart: PostgreSQL's regular
# expressions run several times slower with them, and half a million rows go through each.
PERIOD = r"^[0-9][0-9][0-9][0-9]-(0[1-9]|1[0-2])$"
DATE = r"^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$"
DIGITS = r"^[0-9]+$"
MAX_DIGITS = 15
BILL_NUMBER = r"^[A-Z0-9][A-Z0-9_/.-]*$"
MAX_BILL_NUMBER = 32
PHONE = r"^\+?[0-9][0-9 .-]{6,18}$"
NOT_PHONE_CHAR = r"[^0-9+]"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_EMAIL_LOCAL = 64
# Bigger than any household's month, small enough to catch a unit or column mix-up.
MAX_KWH = 10_000_000
MAX_AMOUNT = 10**13
MAX_NAME, MAX_ADDRESS, MAX_AREA, MAX_EMAIL, MAX_PHONE = 200, 300, 100, 254, 20

REASONS = {
    "columns": "expected {expected} columns, found {value}",
    "code": "invalid customer code {value!r}",
    "name_empty": "customer name is empty",
    "name_long": "customer name is longer than 200 characters",
    "address_long": "address is longer than 300 characters",
    "area_empty": "service area is empty",
    "area_long": "service area is longer than 100 characters",
    "phone": "invalid phone {value!r}",
    "email": "invalid e-mail {value!r}",
    "number": "invalid bill number {value!r}",
    "period": "period {value!r} is not YYYY-MM",
    "kwh": "kwh {value!r} is not a whole non-negative number",
    "amount": "amount {value!r} is not a whole non-negative number of VND",
    "due": "due date {value!r} is not a valid YYYY-MM-DD date",
    "due_before": "due date {value} is before the billing period {period}",
    "number_repeats": "bill number {value} repeats line {first}",
    "period_repeats": "customer {code} already has a bill for {period} on line {first}",
    "bill_changed": (
        "bill {value} already exists with different values "
        "(customer {code}, period {period}, {kwh} kWh, {amount} VND, due {due})"
    ),
    "period_taken": "customer {code} already has bill {value} for {period}",
}

_PERIOD, _DATE, _DIGITS = map(re.compile, (PERIOD, DATE, DIGITS))
_BILL_NUMBER, _PHONE, _NOT_PHONE_CHAR = map(re.compile, (BILL_NUMBER, PHONE, NOT_PHONE_CHAR))
_EMAIL = re.compile(EMAIL)
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str


def row_error(line: int, rule: str, **values: object) -> RowError:
    return RowError(line, REASONS[rule].format(expected=len(COLUMNS), **values))


@dataclass(slots=True)
class BillRow:
    line: int
    customer_code: str
    customer_name: str
    address: str
    service_area: str
    phone: str
    email: str
    bill_number: str
    period: datetime.date
    kwh: int
    amount: int
    due_date: datetime.date
    area_id: int = 0


def _whole(text: str) -> bool:
    return len(text) <= MAX_DIGITS and bool(_DIGITS.match(text))


def _date(text: str) -> datetime.date | None:
    if not _DATE.match(text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def customer_code_of(raw: str, pattern: re.Pattern[str]) -> str | None:
    """The code in its printed form, or None. Already printed is the common case, and cheap."""
    code = raw.translate(_ASCII_UPPER)
    if pattern.fullmatch(code):
        return code
    code = normalise(raw)
    return code if pattern.fullmatch(code) else None


def validate_row(
    line: int, values: list[str], code_pattern: re.Pattern[str] | None = None
) -> BillRow | RowError:
    """Check one row; the first problem found, in the order of REASONS, is its reason."""
    if len(values) != len(COLUMNS):
        return row_error(line, "columns", value=len(values))
    code_raw, name, address, area, phone, email, number, period, kwh, amount, due = (
        value.strip(BLANKS) for value in values
    )
    code = customer_code_of(code_raw, code_pattern or customer_code_pattern())
    if code is None:
        return row_error(line, "code", value=code_raw)
    if not name:
        return row_error(line, "name_empty")
    if len(name) > MAX_NAME:
        return row_error(line, "name_long")
    if len(address) > MAX_ADDRESS:
        return row_error(line, "address_long")
    if not area:
        return row_error(line, "area_empty")
    if len(area) > MAX_AREA:
        return row_error(line, "area_long")
    if phone and not (len(phone) <= MAX_PHONE and _DIGITS.match(phone)):
        if not _PHONE.match(phone):
            return row_error(line, "phone", value=phone)
        phone = _NOT_PHONE_CHAR.sub("", phone)
    if email and (
        len(email) > MAX_EMAIL
        or not _EMAIL.match(email)
        or len(email.partition("@")[0]) > MAX_EMAIL_LOCAL
    ):
        return row_error(line, "email", value=email)
    # ASCII letters only, as PostgreSQL's upper() leaves "ﬁ" or "ß" alone where Python's
    # would spell them out: the two loaders must refuse the same rows, in the same words.
    upper_number = number.translate(_ASCII_UPPER)
    if len(upper_number) > MAX_BILL_NUMBER or not _BILL_NUMBER.match(upper_number):
        return row_error(line, "number", value=number)
    number = upper_number
    if not _PERIOD.match(period) or period.startswith("0000"):
        return row_error(line, "period", value=period)
    period_start = datetime.date(int(period[:4]), int(period[5:]), 1)
    if not _whole(kwh) or int(kwh) > MAX_KWH:
        return row_error(line, "kwh", value=kwh)
    if not _whole(amount) or int(amount) >= MAX_AMOUNT:
        return row_error(line, "amount", value=amount)
    due_date = _date(due)
    if due_date is None:
        return row_error(line, "due", value=due)
    if due_date < period_start:
        return row_error(line, "due_before", value=due, period=period)
    return BillRow(
        line=line,
        customer_code=code,
        customer_name=name,
        address=address,
        service_area=area,
        phone=phone,
        email=email.lower(),
        bill_number=number,
        period=period_start,
        kwh=int(kwh),
        amount=int(amount),
        due_date=due_date,
    )
