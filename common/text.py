"""Text folding shared by search, code normalisation and transfer-note matching."""

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_SPACES = re.compile(r"\s+")


def _slow_strip(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Every precomposed Latin letter with a diacritic, mapped to its base letter once, so folding a
# name is one str.translate (C speed): the importer folds half a million names a month.
_LATIN = [chr(code) for code in range(0x00C0, 0x0250)] + [
    chr(code) for code in range(0x1E00, 0x1F00)
]
_TABLE = str.maketrans(
    {ch: base for ch in _LATIN if (base := _slow_strip(ch)) != ch and len(base) == 1}
)


def strip_accents(text: str) -> str:
    """Remove Vietnamese diacritics: 'Nguyễn Văn Đức' -> 'Nguyen Van Duc'."""
    folded = text.translate(_TABLE)
    # Combining marks typed separately (decomposed input) or letters outside the table.
    return folded if folded.isascii() else _slow_strip(folded)


def fold(text: str) -> str:
    """Lower-cased, accent-free, single-spaced text for accent-insensitive search."""
    return _SPACES.sub(" ", strip_accents(text).lower()).strip()


def alnum_upper(text: str) -> str:
    """Upper-case ASCII letters and digits only, as a bank note reads once noise is removed."""
    return _NON_ALNUM.sub("", strip_accents(text).upper())


def normalise_customer_code(raw: str) -> str:
    """Codes are typed with spaces, dashes and lower case; compare them without any of that."""
    return re.sub(r"[\s\-.]+", "", raw or "").upper()
