"""What a public page may show of a customer: enough to recognise, not enough to profile.

Every public page and response (bills page, payment pages, receipts, the lookup API) shows names
and addresses only through these functions, and never shows a phone number or an e-mail address.
"""

from __future__ import annotations

import re
import unicodedata

MASK = "***"
# Digits that could be a phone number, an ID card or a house number inside a kept address part.
_LONG_NUMBER = re.compile(r"\d{4,}")


def mask_name(name: str) -> str:
    """'Nguyễn Văn An' -> 'Nguyễn V** A**': the family name, then the initials of the others.

    A household recognises its own bill by the family name and initials; a stranger who types
    codes at random learns little from them. A one-word name (a nickname, an organisation's
    acronym) would be shown whole by that rule, so it is reduced to its initial too.
    """
    # NFC so an initial keeps its diacritics ('Đ', 'Ă') instead of splitting off a combining mark.
    words = unicodedata.normalize("NFC", name).split()
    if not words:
        return ""
    if len(words) == 1:
        return f"{words[0][0]}**"
    return " ".join([words[0], *(f"{word[0]}**" for word in words[1:])])


def mask_address(address: str) -> str:
    """Hide the house and street; keep at most the last two parts (commune, district).

    'Số 12, đường Trần Phú, phường Bắc Hà, TP Hà Tĩnh' -> '***, phường Bắc Hà, TP Hà Tĩnh'.
    'Xóm 3, xã Thạch Đài' -> '***, xã Thạch Đài'. The first part is always hidden, and an
    address without commas is hidden whole, since there is no telling where the street ends.
    """
    parts = [part.strip() for part in unicodedata.normalize("NFC", address).split(",")]
    parts = [part for part in parts if part]
    if len(parts) <= 1:
        return MASK if parts else ""
    kept = [_LONG_NUMBER.sub(MASK, part) for part in parts[1:][-2:]]
    return ", ".join([MASK, *kept])
