"""Payment references a person can read aloud and type into a transfer note.

`EVN` + 8 random characters + 1 check character, from an alphabet without O/0 and I/1. The
check character (Luhn mod 32) catches every single mistyped character and most swapped
neighbours, so a note with a typo is never matched to someone else's payment. Twelve characters
leave room in VietQR's 19-character transfer note.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PREFIX = "EVN"
BODY_LENGTH = 8
LENGTH = len(PREFIX) + BODY_LENGTH + 1
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_N = len(ALPHABET)
# Lookahead so overlapping candidates are all tried: banks glue their own text to the note.
_CANDIDATE = re.compile(rf"(?=({PREFIX}[{ALPHABET}]{{{BODY_LENGTH + 1}}}))")


def check_character(body: str) -> str:
    """Luhn mod N over `body` (the characters after the prefix, without the check)."""
    factor = 2
    total = 0
    for ch in reversed(body):
        addend = factor * _INDEX[ch]
        factor = 1 if factor == 2 else 2
        total += addend // _N + addend % _N
    return ALPHABET[(_N - total % _N) % _N]


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return f"{PREFIX}{body}{check_character(body)}"


def is_valid(reference: str) -> bool:
    if len(reference) != LENGTH or not reference.startswith(PREFIX):
        return False
    body, check = reference[len(PREFIX) : -1], reference[-1]
    if any(ch not in _INDEX for ch in body + check):
        return False
    return check_character(body) == check


def find_in(text: str) -> list[str]:
    """Valid references inside already-normalised text (upper-case letters and digits only)."""
    found: list[str] = []
    for candidate in _CANDIDATE.findall(text):
        if is_valid(candidate) and candidate not in found:
            found.append(candidate)
    return found
