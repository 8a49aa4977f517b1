"""Keep secrets and personal data out of log lines."""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # Signatures, keys and secrets in query strings, headers and JSON bodies.
    (
        re.compile(
            r"(?i)(vnp_SecureHash|signature|secret|api[_-]?key|authorization|password)"
            r"([\"']?\s*[:=]\s*[\"']?)(Apikey\s+)?[^\s&\"',}]+"
        ),
        r"\1\2\3***",
    ),
    # Vietnamese mobile numbers: keep the last three digits for support.
    (re.compile(r"(?<!\d)(?:\+?84|0)\d{6,7}(\d{3})(?!\d)"), r"*******\1"),
    # E-mail addresses.
    (re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)"), r"\1***@\2"),
]


def mask_sensitive(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskSensitiveFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_sensitive(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
