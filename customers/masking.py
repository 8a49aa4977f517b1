"""What a public page may show of a customer: enough to recognise, not enough to profile."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """'Nguyễn Văn An' -> 'Nguyễn V** A**': the family name, then initials."""
    words = name.split()
    if not words:
        return ""
    return " ".join([words[0], *(f"{word[0]}**" for word in words[1:])])


def mask_address(address: str) -> str:
    """Hide the house and street; keep the commune and district people recognise.

    'Số 12, đường Trần Phú, phường Bắc Hà, TP Hà Tĩnh' -> '***, phường Bắc Hà, TP Hà Tĩnh'.
    """
    parts = [part.strip() for part in address.split(",") if part.strip()]
    if len(parts) <= 2:
        return "***"
    return ", ".join(["***", *parts[-2:]])


def mask_phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return f"*******{digits[-3:]}" if len(digits) >= 6 else "***"
