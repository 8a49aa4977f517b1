"""Payment references a person can read aloud and type into a transfer note.

`EVN` + 8 random characters + 1 check character, from an alphabet without O/0 and I/1. The
check character (Luhn mod 32) catches every single mistyped character and most swapped
neighbours, so a note with a typo is never matched to someone else's payment. Twelve characters
leave room in VietQR's 19-character transfer note.

A bill has a reference of its own, printed on the paper bill and in its QR: `HD` + the bill's id
in 8 characters of the same alphabet + the same check character. It is stable (the id does not
change), needs no table to read back, and a transfer carrying it pays that bill through the
bill's standing payment, whose reference it is.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PREFIX = "EVN"
BODY_LENGTH = 8
LENGTH = len(PREFIX) + BODY_LENGTH + 1  # of a payment reference
BILL_PREFIX = "HD"
BILL_LENGTH = len(BILL_PREFIX) + BODY_LENGTH + 1
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_N = len(ALPHABET)
# Lookahead so overlapping candidates are all tried: banks glue their own text to the note.
_CANDIDATE = re.compile(rf"(?=((?:{PREFIX}|{BILL_PREFIX})[{ALPHABET}]{{{BODY_LENGTH + 1}}}))")


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


# Ids are spread over the whole space by an odd multiplier (a bijection modulo 32^8), so that
# consecutive bills do not share all but their last characters and a reference reads like any
# other; the inverse multiplier reads it back.
_SPACE = _N**BODY_LENGTH
_SPREAD = 0x9E3779B97F % _SPACE | 1
_GATHER = pow(_SPREAD, -1, _SPACE)


def bill_reference(bill_id: int) -> str:
    """The bill's own reference: its id, spread, in the alphabet, with the check character."""
    if not 0 < bill_id < _SPACE:
        raise ValueError(f"bill id {bill_id} does not fit a reference")
    bill_id = bill_id * _SPREAD % _SPACE
    digits = []
    for _position in range(BODY_LENGTH):
        bill_id, digit = divmod(bill_id, _N)
        digits.append(ALPHABET[digit])
    body = "".join(reversed(digits))
    return f"{BILL_PREFIX}{body}{check_character(body)}"


def bill_id_of(reference: str) -> int | None:
    """The bill a valid bill reference names; None for anything else (payment references too)."""
    if not reference.startswith(BILL_PREFIX) or not is_valid(reference):
        return None
    spread = 0
    for ch in reference[len(BILL_PREFIX) : -1]:
        spread = spread * _N + _INDEX[ch]
    return spread * _GATHER % _SPACE or None


def is_valid(reference: str) -> bool:
    """A payment reference or a bill reference, with its check character right."""
    prefix = BILL_PREFIX if reference.startswith(BILL_PREFIX) else PREFIX
    if len(reference) != len(prefix) + BODY_LENGTH + 1 or not reference.startswith(prefix):
        return False
    body, check = reference[len(prefix) : -1], reference[-1]
    if any(ch not in _INDEX for ch in body + check):
        return False
    return check_character(body) == check


def find_in(text: str) -> list[str]:
    """Valid references, of payments and of bills, inside already-normalised text (upper-case
    letters and digits only)."""
    found: list[str] = []
    for candidate in _CANDIDATE.findall(text):
        if is_valid(candidate) and candidate not in found:
            found.append(candidate)
    return found
