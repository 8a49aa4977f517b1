"""Customer codes as households type them, checked before any database work."""

from __future__ import annotations

import re
from functools import cache

from django.conf import settings

from portal.text import normalise_customer_code


class InvalidCustomerCode(ValueError):
    pass


@cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def is_valid_customer_code(code: str) -> bool:
    return bool(_pattern(settings.CUSTOMER_CODE_PATTERN).fullmatch(code))


def clean_customer_code(raw: str | None) -> str:
    """Normalise (spaces, dashes, lower case) and validate; raises InvalidCustomerCode."""
    code = normalise_customer_code(raw or "")
    if not is_valid_customer_code(code):
        raise InvalidCustomerCode(code)
    return code
