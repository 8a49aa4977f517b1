"""VietQR for a payment: the payload with the utility's account, and its PNG and SVG images."""

from __future__ import annotations

import io
from functools import lru_cache

import qrcode
import qrcode.image.svg
from django.conf import settings
from qrcode.constants import ERROR_CORRECT_M

from payments.models import Payment
from payments.providers.vietqr import VietQR, build_payload
from portal.text import strip_accents


def payment_qr_payload(payment: Payment) -> str:
    """A dynamic QR: the exact amount, and the reference as the transfer note (62/08)."""
    return build_payload(
        VietQR(
            bank_bin=settings.VIETQR_BIN,
            account=settings.VIETQR_ACCOUNT,
            amount=payment.amount,
            purpose=payment.reference,
        )
    )


def account_name() -> str:
    # Banking apps show the beneficiary in upper-case ASCII; so do we, to match what they see.
    return strip_accents(settings.VIETQR_ACCOUNT_NAME).upper()


def _qr(payload: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(payload)
    code.make(fit=True)
    return code


# Payloads are immutable for a payment, so their images can be kept; 512 covers a busy minute.
@lru_cache(maxsize=512)
def render_png(payload: str) -> bytes:
    buffer = io.BytesIO()
    _qr(payload).make_image().save(buffer, format="PNG")
    return buffer.getvalue()


@lru_cache(maxsize=512)
def render_svg(payload: str) -> bytes:
    buffer = io.BytesIO()
    _qr(payload).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    return buffer.getvalue()
