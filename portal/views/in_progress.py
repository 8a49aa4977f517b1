"""This browser's payment in progress: remembered when it starts one, offered on the bills page.

A household that leaves a bank's page (or the QR) and comes back to its bills should continue
that payment, or cancel it, rather than start a second one that could see both go through.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from payments.models import Payment

# This browser's payment in progress, so the bills page can offer to continue it rather than
# start a second one (which could see both go through). A signed cookie: only the browser that
# started it is told, and looking a code up costs no query for anyone else.
OPEN_PAYMENT_COOKIE = "open_payment"
_OPEN_PAYMENT_SALT = "portal.open-payment"


def remember_open_payment(response: HttpResponse, payment: Payment) -> HttpResponse:
    response.set_signed_cookie(
        OPEN_PAYMENT_COOKIE,
        f"{payment.customer.code}:{payment.id}",
        salt=_OPEN_PAYMENT_SALT,
        max_age=int(settings.PAYMENT_TTL.total_seconds()) + 3600,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


def open_payment(request: HttpRequest, code: str) -> Payment | None:
    """The payment this browser started for this customer, while it still waits for money."""
    value = request.get_signed_cookie(OPEN_PAYMENT_COOKIE, default=None, salt=_OPEN_PAYMENT_SALT)
    if not value or not value.startswith(f"{code}:"):
        return None
    payment_id = value.split(":", 1)[1]
    return (
        Payment.objects.filter(
            pk=payment_id,
            customer__code=code,
            status=Payment.Status.PENDING,
            expires_at__gt=timezone.now(),
        )
        .only("id", "reference", "amount", "method", "expires_at")
        .first()
    )
