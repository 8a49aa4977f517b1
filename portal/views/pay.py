"""Public payment pages: start a payment from the bills page, follow it, see the receipt."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from common import error_pages
from common.error_messages import error_message
from common.ratelimit import client_address, lookup_hit
from customers.codes import InvalidCustomerCode, clean_customer_code
from customers.masking import mask_address, mask_name
from payments import selectors, services
from payments.channels import registry
from payments.channels.common.pages import NotConfigured, PartnerUnavailable
from payments.channels.vietqr import image as vietqr
from payments.models import Partner, Payment
from portal.views.in_progress import open_payment, remember_open_payment

# What a phone's browser says of itself: it is the one that can open a wallet's app.
_PHONE = re.compile(r"Mobi|Android|iPhone|iPad|iPod")


def on_a_phone(request: HttpRequest) -> bool:
    return bool(_PHONE.search(request.headers.get("User-Agent", "")))


def _payment_or_404(payment_id: UUID) -> Payment:
    payment = selectors.payment_get(payment_id=payment_id)
    if payment is None:
        raise Http404
    return payment


@require_POST
def start(request: HttpRequest) -> HttpResponse:
    """The bills page's "pay" form: create the payment (or take up the customer's open one of
    the same bills and method), then hand over to QR or bank."""
    # The lookup budget: a start also tells whether a code exists, and costs bank status checks.
    decision = lookup_hit(request)
    if not decision.allowed:
        return error_pages.too_many_requests(
            request,
            retry_after=decision.retry_after,
            message=_(
                "There have been many payment requests and lookups from your connection in a "
                "short time. To keep customers' bills private, we pause them for a little while."
            ),
        )
    try:
        code = clean_customer_code(request.POST.get("customer_code"))
    except InvalidCustomerCode:
        messages.error(request, error_message("invalid_customer_code"))
        return redirect("home")
    method = request.POST.get("method", "")
    partner_code = ""
    if method.startswith("redirect:"):
        method, partner_code = "redirect", method.split(":", 1)[1]
    if method not in (Payment.Method.VIETQR, Payment.Method.REDIRECT):
        messages.error(request, _("Please choose how to pay."))
        return redirect("bills", code=code)
    bill_numbers = [number for number in request.POST.getlist("bills") if number] or None
    if request.POST.get("anyway") != "1":
        holding = services.payments_holding(
            customer_code=code,
            method=method,
            bill_numbers=bill_numbers,
            partner_code=partner_code or None,
        )
        if holding:
            return _held_warning(request, code, holding, method, partner_code)
    try:
        payment = services.payment_start(
            customer_code=code,
            method=method,
            bill_numbers=bill_numbers,
            partner_code=partner_code or None,
        ).payment
        if payment.method == Payment.Method.REDIRECT:
            # Outside any transaction: a wallet's order is opened by a call to its server.
            checkout = registry.start(
                payment,
                client_ip=client_address(request),
                locale=getattr(request, "LANGUAGE_CODE", "vi"),
                phone=on_a_phone(request),
            )
            if checkout.direct:
                return remember_open_payment(HttpResponseRedirect(checkout.pay_url), payment)
    except services.PaymentError as exc:
        messages.error(request, error_message(exc.code, exc.message, **exc.context))
        return redirect("bills", code=code)
    except NotConfigured:
        messages.error(request, error_message("invalid_partner"))
        return redirect("bills", code=code)
    except PartnerUnavailable as exc:
        return _unavailable(request, code, payment, refused=exc.refused)
    # VietQR, and a wallet: the checkout offers its app and its web page.
    return remember_open_payment(redirect("pay", payment_id=payment.id), payment)


def _unavailable(
    request: HttpRequest, code: str, payment: Payment, *, refused: bool
) -> HttpResponse:
    """The wallet did not open the order. Refused: the payment failed, choose again. No answer:
    the order may exist, so the payment stays open (and is checked with the wallet); its page
    says so and lets the household try again or cancel it."""
    name = payment.partner.name if payment.partner else ""
    if refused:
        messages.error(
            request,
            _("%(wallet)s could not take this payment. Please choose another way to pay.")
            % {"wallet": name},
        )
        return redirect("bills", code=code)
    messages.error(
        request,
        _(
            "%(wallet)s did not answer in time. Please try again in a moment, or cancel this "
            "payment and choose another way to pay."
        )
        % {"wallet": name},
    )
    return remember_open_payment(redirect("pay", payment_id=payment.id), payment)


def _held_warning(
    request: HttpRequest, code: str, holding: list[Payment], method: str, partner_code: str
) -> HttpResponse:
    """Another way to pay bills a payment in progress holds: said first, with the way on. Only
    the browser that started that payment is shown it and offered to continue or cancel it;
    anyone else is told only that one is waiting (`in_progress`, as on the bills page)."""
    mine = open_payment(request, code)
    partner = Partner.objects.filter(code=partner_code).first() if partner_code else None
    return render(
        request,
        "pay/held.html",
        {
            "code": code,
            "mine": mine if mine and mine.pk in {payment.pk for payment in holding} else None,
            "started_at": holding[0].created_at,
            "chosen_method": request.POST.get("method", ""),
            "chosen_bank": partner.name if partner else "",
            "bills": request.POST.getlist("bills"),
        },
    )


@never_cache
@require_GET
def page(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    payment = _payment_or_404(payment_id)
    context: dict[str, Any] = {
        "payment": payment,
        "bank_says": _bank_says(request, payment),
        "customer_name": mask_name(payment.customer.name),
        "customer_address": mask_address(payment.customer.address),
        "lines": list(payment.lines.all()),
        "status_url": reverse("api-payment", args=[payment.id]),
    }
    if _is_wallet(payment):
        context["wallet"] = _wallet(request, payment)
    if payment.method == Payment.Method.VIETQR:
        due = vietqr.payment_amount_due(payment)
        context["qr"] = {
            "amount": due,
            "received": payment.amount - due,
            "payload": vietqr.payment_qr_payload(payment),
            "bank_name": _receiving_bank_name(),
            "account": settings.VIETQR_ACCOUNT,
            "account_name": vietqr.account_name(),
        }
    response = render(request, "pay/page.html", context)
    patch_vary_headers(response, ["User-Agent"])  # a phone is offered the wallet's app
    return response


def _is_wallet(payment: Payment) -> bool:
    return (
        payment.method == Payment.Method.REDIRECT
        and payment.partner is not None
        and payment.partner.redirect_protocol != Partner.Protocol.VNPAY
    )


def _wallet(request: HttpRequest, payment: Payment) -> dict[str, Any]:
    """Where to pay a wallet payment: its app on a phone (the link the wallet's create call
    gave), its web page everywhere (the same link, for ZaloPay)."""
    pay_url = str(payment.provider_data.get("redirect_url", ""))
    app_url = str(payment.provider_data.get("app_url", ""))
    phone = on_a_phone(request)
    return {
        "name": payment.partner.name if payment.partner else "",
        "app_url": app_url if phone else "",
        "pay_url": pay_url if not (phone and pay_url == app_url) else "",
        "opened": bool(pay_url or app_url),
    }


@require_POST
def open_wallet(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    """Ask the wallet again for the order of a pending payment whose create call got no answer:
    the same order (MoMo and ZaloPay open one per reference), never a second one."""
    payment = _payment_or_404(payment_id)
    if not _is_wallet(payment) or payment.status != Payment.Status.PENDING:
        return redirect("pay", payment_id=payment.id)
    # The lookup budget, as for starting a payment: each try costs a call to the wallet.
    decision = lookup_hit(request)
    if not decision.allowed:
        return error_pages.too_many_requests(request, retry_after=decision.retry_after)
    try:
        registry.start(
            payment,
            client_ip=client_address(request),
            locale=getattr(request, "LANGUAGE_CODE", "vi"),
            phone=on_a_phone(request),
        )
    except NotConfigured:
        messages.error(request, error_message("invalid_partner"))
        return redirect("bills", code=payment.customer.code)
    except PartnerUnavailable as exc:
        return _unavailable(request, payment.customer.code, payment, refused=exc.refused)
    return redirect("pay", payment_id=payment.id)


# What the bank's vnp_ResponseCode means, in words a household understands.
BANK_REASONS = {
    "07": gettext_lazy("the bank is checking this transaction"),
    "09": gettext_lazy("internet banking is not turned on for your account"),
    "10": gettext_lazy("the verification failed too many times"),
    "11": gettext_lazy("the time to pay ran out"),
    "12": gettext_lazy("your account is locked"),
    "13": gettext_lazy("the one-time password (OTP) was wrong"),
    "24": gettext_lazy("you cancelled the payment"),
    "51": gettext_lazy("the account balance is not enough"),
    "65": gettext_lazy("the daily limit of your account was reached"),
    "75": gettext_lazy("the bank is under maintenance"),
    "79": gettext_lazy("the password was wrong too many times"),
}


# What MoMo's resultCode means, in words a household understands (ZaloPay's return says only
# "paid" or not: the page then waits for the wallet's word).
WALLET_REASONS: dict[str, dict[str, Any]] = {
    Partner.Protocol.MOMO: {
        "1001": gettext_lazy("the wallet balance is not enough"),
        "1002": gettext_lazy("the card or bank behind your wallet refused it"),
        "1004": gettext_lazy("the amount is over your wallet's limit"),
        "1005": gettext_lazy("the time to pay ran out"),
        "1006": gettext_lazy("you declined the payment"),
        "1007": gettext_lazy("your wallet account is not active"),
        "4001": gettext_lazy("your wallet account is restricted"),
        "4100": gettext_lazy("you did not sign in to the wallet"),
    },
}


def _reasons(payment: Payment) -> dict[str, Any]:
    protocol = payment.partner.redirect_protocol if payment.partner else Partner.Protocol.VNPAY
    if protocol == Partner.Protocol.VNPAY:
        return dict(BANK_REASONS)
    return WALLET_REASONS.get(protocol, {})


def _bank_says(request: HttpRequest, payment: Payment) -> dict[str, str] | None:
    """What the bank told the household on its way back (`pay_return`), while the payment is
    still open: the page shows it as the one message of the state, instead of "waiting for your
    payment" beside it. Words only; the payment's state is still the bank's to confirm."""
    if payment.status not in (Payment.Status.PENDING, Payment.Status.EXPIRED):
        return None
    said = request.GET.get("bank")
    if said == "ok":
        return {"result": "ok"}
    if said == "declined":
        reason = _reasons(payment).get(request.GET.get("reason", ""))
        return {"result": "declined", "reason": str(reason) if reason else ""}
    return None


def _receiving_bank_name() -> str:
    partner = Partner.objects.receiving_bank()
    return partner.name if partner else settings.VIETQR_BIN


@require_POST
def cancel(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    payment = _payment_or_404(payment_id)
    try:
        services.payment_cancel(
            payment_id=payment.id, report=services.Report(source=services.Source.API)
        )
    except services.InvalidTransition:
        messages.error(request, _("This payment can no longer be cancelled."))
        return redirect("pay", payment_id=payment.id)
    return redirect("bills", code=payment.customer.code)


@require_GET
def receipt(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    payment = _payment_or_404(payment_id)
    if payment.status != Payment.Status.SUCCEEDED:
        return redirect("pay", payment_id=payment.id)
    return render(
        request,
        "pay/receipt.html",
        {
            "payment": payment,
            "customer_name": mask_name(payment.customer.name),
            "customer_address": mask_address(payment.customer.address),
            "lines": list(payment.lines.all()),
            "refund_days": settings.REFUND_WORKING_DAYS,
            "emailed": bool(payment.contact_email or payment.customer.email),
        },
    )
