"""Text folding shared by search, code normalisation and transfer-note matching."""

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_SPACES = re.compile(r"\s+")


def strip_accents(text: str) -> str:
    """Remove Vietnamese diacritics: 'Nguyễn Văn Đức' -> 'Nguyen Van Duc'."""
    # đ/Đ are letters of their own, not a base letter plus a combining mark.
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """Lower-cased, accent-free, single-spaced text for accent-insensitive search."""
    return _SPACES.sub(" ", strip_accents(text).lower()).strip()


def alnum_upper(text: str) -> str:
    """Upper-case ASCII letters and digits only, as a bank note reads once noise is removed."""
    return _NON_ALNUM.sub("", strip_accents(text).upper())


def normalise_customer_code(raw: str) -> str:
    """Codes are typed with spaces, dashes and lower case; compare them without any of that."""
    return re.sub(r"[\s\-.]+", "", raw or "").upper()
