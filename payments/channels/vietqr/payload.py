"""VietQR payloads: NAPAS QR on EMVCo Merchant-Presented Mode. Pure functions, no Django.

Every field is ID (2 digits) + LENGTH (2 digits) + VALUE; the payload ends with tag 63, a
CRC-16/CCITT-FALSE over everything before it including the characters "6304".
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

GUID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
SERVICE_TO_CARD = "QRIBFTTC"
CURRENCY_VND = "704"
STATIC, DYNAMIC = "11", "12"


class PayloadError(ValueError):
    """The text is not a well-formed VietQR payload."""


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.

    That is the standard library's CRC-CCITT (`binascii.crc_hqx`) started at 0xFFFF, in C:
    every QR image, every parse and every row of a printing export computes one.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def _tlv(tag: str, value: str) -> str:
    if len(value) > 99:
        raise PayloadError(f"value of tag {tag} is longer than 99 characters")
    return f"{tag}{len(value):02d}{value}"


def parse_tlv(text: str) -> dict[str, str]:
    """Split one level of ID-LENGTH-VALUE fields; nested values stay as text."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        if pos + 4 > len(text):
            raise PayloadError(f"truncated field at position {pos}")
        tag, length_text = text[pos : pos + 2], text[pos + 2 : pos + 4]
        if not (tag.isdigit() and length_text.isdigit() and tag.isascii()):
            raise PayloadError(f"malformed field header at position {pos}")
        if tag in fields:
            raise PayloadError(f"field {tag} appears twice")
        length = int(length_text)
        value = text[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise PayloadError(f"field {tag} runs past the end")
        fields[tag] = value
        pos += 4 + length
    return fields


def _is_ascii_alnum(text: str) -> bool:
    return text.isascii() and text.isalnum()


@dataclass(frozen=True)
class VietQR:
    bank_bin: str
    account: str
    amount: int | None = None  # whole VND; None for a static QR
    purpose: str = ""  # tag 62/08, the transfer note
    bill_number: str = ""  # tag 62/01
    merchant_name: str = ""  # tag 59
    merchant_city: str = ""  # tag 60
    to_card: bool = False

    def __post_init__(self) -> None:
        if not (len(self.bank_bin) == 6 and self.bank_bin.isascii() and self.bank_bin.isdigit()):
            raise PayloadError("bank BIN must be 6 digits")
        if not (0 < len(self.account) <= 19 and _is_ascii_alnum(self.account)):
            raise PayloadError("account must be 1 to 19 letters or digits")
        if self.amount is not None and not (
            isinstance(self.amount, int) and self.amount > 0 and len(str(self.amount)) <= 13
        ):
            raise PayloadError("amount must be a positive whole number of at most 13 digits")
        for name, limit in (("purpose", 25), ("bill_number", 25), ("merchant_name", 25)):
            value = getattr(self, name)
            if len(value) > limit or not value.isascii():
                raise PayloadError(f"{name} must be ASCII of at most {limit} characters")
        if len(self.merchant_city) > 15 or not self.merchant_city.isascii():
            raise PayloadError("merchant_city must be ASCII of at most 15 characters")


def build_payload(qr: VietQR) -> str:
    beneficiary = _tlv("00", qr.bank_bin) + _tlv("01", qr.account)
    merchant_info = (
        _tlv("00", GUID)
        + _tlv("01", beneficiary)
        + _tlv("02", SERVICE_TO_CARD if qr.to_card else SERVICE_TO_ACCOUNT)
    )
    parts = [
        _tlv("00", "01"),
        _tlv("01", STATIC if qr.amount is None else DYNAMIC),
        _tlv("38", merchant_info),
        _tlv("53", CURRENCY_VND),
    ]
    if qr.amount is not None:
        parts.append(_tlv("54", str(qr.amount)))
    parts.append(_tlv("58", "VN"))
    if qr.merchant_name:
        parts.append(_tlv("59", qr.merchant_name))
    if qr.merchant_city:
        parts.append(_tlv("60", qr.merchant_city))
    additional = ""
    if qr.bill_number:
        additional += _tlv("01", qr.bill_number)
    if qr.purpose:
        additional += _tlv("08", qr.purpose)
    if additional:
        parts.append(_tlv("62", additional))
    body = "".join(parts) + "6304"
    return body + f"{crc16_ccitt_false(body.encode('ascii')):04X}"


def parse_payload(payload: str) -> VietQR:
    """Parse and check a payload; raises PayloadError on a bad CRC or a malformed field.

    Strict on purpose: the CRC must be the four upper-case hex digits the spec prescribes and the
    text must be ASCII (every field this module writes is), so that any single changed character
    is refused, by the CRC or by the parser.
    """
    if not isinstance(payload, str) or not payload.isascii():
        raise PayloadError("payload must be ASCII text")
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise PayloadError("payload must end with the CRC field 6304XXXX")
    expected = f"{crc16_ccitt_false(payload[:-4].encode('ascii')):04X}"
    if payload[-4:] != expected:
        raise PayloadError("CRC does not match")
    fields = parse_tlv(payload)
    if fields.get("63") != payload[-4:] or next(reversed(fields)) != "63":
        raise PayloadError("the CRC field must be the last field")
    if fields.get("00") != "01":
        raise PayloadError("payload format indicator must be 01")
    if fields.get("01") not in (STATIC, DYNAMIC):
        raise PayloadError("point of initiation must be 11 (static) or 12 (dynamic)")
    if fields.get("53", CURRENCY_VND) != CURRENCY_VND:
        raise PayloadError("currency is not VND")
    merchant = parse_tlv(fields.get("38", ""))
    if merchant.get("00") != GUID:
        raise PayloadError("merchant account information is not NAPAS VietQR")
    service = merchant.get("02")
    if service not in (SERVICE_TO_ACCOUNT, SERVICE_TO_CARD):
        raise PayloadError("service code must be QRIBFTTA or QRIBFTTC")
    beneficiary = parse_tlv(merchant.get("01", ""))
    additional = parse_tlv(fields.get("62", ""))
    amount_text = fields.get("54")
    if amount_text is not None and not (amount_text.isdigit() and amount_text[0] != "0"):
        raise PayloadError("amount must be whole dong")
    return VietQR(
        bank_bin=beneficiary.get("00", ""),
        account=beneficiary.get("01", ""),
        amount=int(amount_text) if amount_text is not None else None,
        purpose=additional.get("08", ""),
        bill_number=additional.get("01", ""),
        merchant_name=fields.get("59", ""),
        merchant_city=fields.get("60", ""),
        to_card=service == SERVICE_TO_CARD,
    )
