"""Customer codes as households type them, checked before any database work."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from django.conf import settings

from common.text import normalise_customer_code

# Far longer than any code; anything longer is refused before the pattern even runs.
MAX_RAW_LENGTH = 64


class InvalidCustomerCode(ValueError):
    pass


@cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def customer_code_pattern() -> re.Pattern[str]:
    """The configured pattern of a normalised code (settings.CUSTOMER_CODE_PATTERN), compiled."""
    return _pattern(settings.CUSTOMER_CODE_PATTERN)


def is_valid_customer_code(code: str) -> bool:
    return bool(customer_code_pattern().fullmatch(code))


def normalise(raw: str | None) -> str:
    """'pa14 ht00-12345' -> 'PA14HT0012345'.

    NFKC first: phone keyboards in Vietnamese or Asian input modes produce full-width letters and
    digits ('ＰＡ１４…') that look the same to the household but would never match.
    """
    return normalise_customer_code(unicodedata.normalize("NFKC", raw or ""))


def clean_customer_code(raw: str | None) -> str:
    """Normalise (width, spaces, dashes, dots, lower case) and validate.

    Raises InvalidCustomerCode, carrying the normalised text, when the result does not match
    `settings.CUSTOMER_CODE_PATTERN`.
    """
    if raw is not None and len(raw) > MAX_RAW_LENGTH:
        raise InvalidCustomerCode(raw[:MAX_RAW_LENGTH])
    code = normalise(raw)
    if not is_valid_customer_code(code):
        raise InvalidCustomerCode(code)
    return code
