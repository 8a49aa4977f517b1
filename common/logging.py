"""Keep secrets and personal data out of log lines.

`MaskSensitiveFilter` sits on every handler in `settings.LOGGING` (the application's lines, the
development server's request lines, and the Celery worker's, stdout included). It masks the
message, the formatted traceback and the stack, so a database error quoting a failing row, or a
request line with a bank's query string, is masked like any other line.
"""

from __future__ import annotations

import logging
import re

# Names under which credentials travel in query strings, headers and bodies.
_CREDENTIAL_FIELDS = "|".join(
    (
        "vnp_SecureHash",
        "signature",
        # ZaloPay's: the browser return's checksum, the callback's MAC.
        "checksum",
        r"\bmac",
        "secret",
        "api[_-]?key",
        "authorization",
        "password",
        "passwd",
        "token",
        "sessionid",
        "csrftoken",
        "cookie",
    )
)
_PATTERNS = [
    # Signatures, keys and secrets in query strings, headers, reprs and JSON bodies, with the
    # authorisation scheme kept so a reader still sees which kind of credential it was.
    (
        re.compile(
            rf"(?i)({_CREDENTIAL_FIELDS})([\"']?\s*[:=]\s*[\"']?)"
            r"((?:Apikey|Bearer|Basic|Token)\s+)?[^\s&\"',;)}]+"
        ),
        r"\1\2\3***",
    ),
    # A credential after its scheme, wherever it appears (a repr, an error message).
    (re.compile(r"\b((?i:apikey)|Bearer|Basic)\s+(?!\*\*\*)[^\s&\"',;)}]+"), r"\1 ***"),
    # Credentials in URLs (postgres://user:password@host, redis://:password@host).
    (re.compile(r"(?<=://)([^:/@\s]*):([^@/\s]+)@"), r"\1:***@"),
    # Vietnamese phone numbers (0 or +84, then a non-zero digit, 9 or 10 digits in all), also
    # right after a URL escape such as %20 or %2B84; the last three digits stay, for support.
    # Bill numbers and customer codes (HD0000000003, PA14HT0012345) have a 0 after the 0.
    (
        re.compile(
            r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![0-9]))(?:(?:\+|%2B)?84|0)[1-9][0-9]{5,6}([0-9]{3})"
            r"(?![0-9])"
        ),
        r"*******\1",
    ),
    # E-mail addresses: the first letter and the domain stay.
    (
        re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"),
        r"\1***@\2",
    ),
]
_formatter = logging.Formatter()


def mask_sensitive(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskSensitiveFilter(logging.Filter):
    """Mask the record in place; every handler after this one sees the masked text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_sensitive(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is printed masked.
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_sensitive(record.stack_info)
        return True
