"""The bank's side of the VNPay 2.1.0 protocol and of VietQR, written independently of the portal.

Nothing here comes from the portal's `payments` package: the sandbox bank must catch the
portal's mistakes, not repeat them, so it signs and reads messages with its own code (the
tests check both against the public vector of docs/protocols.md and against each other).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
STAMP = "%Y%m%d%H%M%S"
HASH_FIELDS = ("vnp_SecureHash", "vnp_SecureHashType")

QUERY_REQUEST_ORDER = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
QUERY_RESPONSE_ORDER = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
    "vnp_PromotionCode",
    "vnp_PromotionAmount",
)

# Reasons the sandbox can decline with (vnp_ResponseCode), in English; templates translate.
DECLINE_CODES = {
    "24": "Customer cancelled",
    "51": "Insufficient balance",
    "11": "Payment window expired",
    "12": "Account locked",
    "13": "Wrong OTP",
    "65": "Daily limit exceeded",
    "75": "Bank under maintenance",
    "79": "Wrong password too many times",
    "09": "Internet banking not enabled",
    "10": "Authentication failed 3 times",
    "99": "Other error",
}


def hmac512(key: str, data: str) -> str:
    return hmac.new(key.encode("utf-8"), data.encode("utf-8"), digestmod="sha512").hexdigest()


def signing_string(params: Mapping[str, object]) -> str:
    """Every vnp_* field but the hash, sorted by name, form-encoded (space as '+')."""
    pairs = sorted(
        (name, str(value))
        for name, value in params.items()
        if name.startswith("vnp_") and name not in HASH_FIELDS
    )
    return urlencode(pairs, quote_via=quote_plus)


def secure_hash(params: Mapping[str, object], secret: str) -> str:
    return hmac512(secret, signing_string(params))


def hash_matches(params: Mapping[str, object], secret: str) -> bool:
    given = str(params.get("vnp_SecureHash", "")).lower()
    if not secret or not given or not given.isascii():
        return False
    return hmac.compare_digest(secure_hash(params, secret), given)


def signed(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """The parameters with their vnp_SecureHash added."""
    return {**params, "vnp_SecureHash": secure_hash(params, secret)}


def piped(values: Mapping[str, object], order: Iterable[str]) -> str:
    return "|".join("" if values.get(name) is None else str(values.get(name)) for name in order)


def query_request_hash(body: Mapping[str, object], secret: str) -> str:
    return hmac512(secret, piped(body, QUERY_REQUEST_ORDER))


def query_response_hash(body: Mapping[str, object], secret: str) -> str:
    return hmac512(secret, piped(body, QUERY_RESPONSE_ORDER))


def stamp(moment: datetime) -> str:
    """Protocol time: yyyyMMddHHmmss on Vietnamese clocks."""
    return moment.astimezone(VIETNAM).strftime(STAMP)


def read_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP).replace(tzinfo=VIETNAM)


def dong(amount_x100: int) -> str:
    """452160 00 -> '452.160 ₫' (Vietnamese grouping)."""
    whole = amount_x100 // 100
    return f"{whole:,}".replace(",", ".") + " ₫"


# --- VietQR -------------------------------------------------------------------------------------
def crc16_ccitt_false(data: bytes) -> int:
    register = 0xFFFF
    for byte in data:
        register ^= byte << 8
        for _bit in range(8):
            register = ((register << 1) ^ 0x1021) if register & 0x8000 else register << 1
            register &= 0xFFFF
    return register


class NotVietQR(ValueError):
    pass


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    position = 0
    while position < len(text):
        if position + 4 > len(text):
            raise NotVietQR("a field is cut short")
        tag, size = text[position : position + 2], text[position + 2 : position + 4]
        if not (tag.isascii() and tag.isdigit() and size.isascii() and size.isdigit()):
            raise NotVietQR(f"unreadable field at {position}")
        end = position + 4 + int(size)
        if end > len(text):
            raise NotVietQR(f"field {tag} is longer than the payload")
        found[tag] = text[position + 4 : end]
        position = end
    return found


@dataclass(frozen=True)
class QRTransfer:
    """What a banking app reads from a VietQR before the customer confirms the transfer."""

    bank_bin: str
    account: str
    amount: int | None
    purpose: str
    extra: dict[str, str] = field(default_factory=dict)


def read_vietqr(payload: str) -> QRTransfer:
    """Check the CRC and read the beneficiary, amount and transfer note of a VietQR payload."""
    payload = payload.strip()
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise NotVietQR("the payload does not end with a CRC field")
    expected = f"{crc16_ccitt_false(payload[:-4].encode('utf-8')):04X}"
    if payload[-4:].upper() != expected:
        raise NotVietQR("the CRC does not match")
    top = _fields(payload)
    if top.get("00") != "01" or "38" not in top:
        raise NotVietQR("not an EMVCo merchant-presented QR with a 38 field")
    merchant = _fields(top["38"])
    if merchant.get("00") != "A000000727":
        raise NotVietQR("not a NAPAS (VietQR) account")
    beneficiary = _fields(merchant.get("01", ""))
    amount_text = top.get("54", "")
    if amount_text and not (amount_text.isascii() and amount_text.isdigit()):
        raise NotVietQR("the amount is not a whole number of dong")
    extra = _fields(top["62"]) if "62" in top else {}
    return QRTransfer(
        bank_bin=beneficiary.get("00", ""),
        account=beneficiary.get("01", ""),
        amount=int(amount_text) if amount_text else None,
        purpose=extra.get("08", ""),
        extra=extra,
    )
