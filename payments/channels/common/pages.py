"""What starting a payment on a partner's page gives the household, and what its browser brings
back: the shapes every payment-page channel (VNPay, MoMo, ZaloPay) answers in."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from payments import services
from payments.channels.common.results import Result
from payments.models import Payment


class NotConfigured(Exception):
    """The partner's credentials are incomplete (PARTNER_<CODE>_*): it takes no payment."""


class PartnerUnavailable(Exception):
    """The partner did not open an order for the payment: it gave no answer, or refused.

    `refused` says the partner answered that it opened none, so nothing can be paid there (the
    payment is cancelled, and the household may start again at once); otherwise an order may
    exist, and the payment is left for the status query to settle."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def order_description(payment: Payment) -> str:
    """What the partner shows the household about the order. ASCII only: some banks and
    wallets mangle anything else."""
    return f"Thanh toan tien dien {payment.customer.code} {payment.reference}"


@dataclass(frozen=True)
class Checkout:
    """Where the household pays: the partner's web page and, for a wallet, the link that opens
    its app on a phone. `direct`: the browser goes straight to the web page (a bank's redirect);
    otherwise the portal's checkout page offers the app and the web page."""

    pay_url: str
    app_url: str = ""
    direct: bool = True


def safe_link(url: object, *, schemes: frozenset[str]) -> str:
    """`url` if it is a link of one of these schemes with a host (or an app's own scheme, which
    has none); "" otherwise. A partner's answer is shown as a link to the household: never a
    `javascript:` or `data:` one."""
    if not isinstance(url, str) or not url or len(url) > 2000 or not url.isprintable():
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        return ""
    if parts.scheme.lower() in ("http", "https") and not parts.netloc:
        return ""
    return url


@dataclass(frozen=True)
class ReturnReport:
    """What the household's browser brought back from the partner, its signature checked: shown,
    never applied. `code` is the partner's own result code, for the page to say why."""

    payment: Payment | None
    result: Result
    code: str


class InvalidReturn(Exception):
    """The signature (or the merchant) of a return did not check out."""


def remember(payment: Payment, **values: str) -> None:
    """Keep protocol details a later step needs (the order's links, what a status query or a
    repeated create must name) in the payment's provider data. Merged under the payment's row
    lock, so that two steps remembering at once (a create retried beside a status query) keep
    each other's keys."""
    with transaction.atomic():
        current = (
            Payment.objects.select_for_update()
            .values_list("provider_data", flat=True)
            .get(pk=payment.pk)
        )
        payment.provider_data = {**current, **values}
        Payment.objects.filter(pk=payment.pk).update(
            provider_data=payment.provider_data, updated_at=timezone.now()
        )


def order_refused(payment: Payment, *, reason: str, detail: dict[str, object]) -> None:
    """The partner answered that it opened no order for the payment: nothing can be paid there,
    so the payment fails (and the household may start another at once). Money that reaches it
    all the same is still applied: a late success for a failed payment is flagged."""
    services.payment_mark_failed(
        payment_id=payment.pk,
        report=services.Report(source=services.Source.SYSTEM, detail=detail),
        reason=reason,
    )
