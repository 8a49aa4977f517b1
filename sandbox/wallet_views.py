"""The sandbox wallets' endpoints and pages: MoMo's and ZaloPay's create and status query (the
merchant's server calls them), and their pay pages (the web page, and the "app" a phone opens)
with approve and decline, as `payments.channels.momo` and `.zalopay` expect them over HTTP."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sandbox import bank, momo, protocol, zalopay
from sandbox.models import BankTransaction, WalletOrder
from sandbox.views import IPN_LABELS, _bank_page_policy, _problem, _uuid_or_none

MOMO_DECLINES = {
    1006: gettext_lazy("User declined"),
    1001: gettext_lazy("Insufficient balance"),
    1002: gettext_lazy("Rejected by the issuer"),
    1005: gettext_lazy("Payment link expired"),
}


def _base_url(request: HttpRequest) -> str:
    """Where the merchant reached the wallet: its pay pages are there too."""
    return f"{request.scheme}://{request.get_host()}"


def _body(request: HttpRequest) -> Any:
    """A JSON body, or a form's fields (ZaloPay takes both)."""
    if request.content_type == "application/json":
        try:
            return json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
    return dict(request.POST.items())


# --- MoMo ---------------------------------------------------------------------------------------
@csrf_exempt
@require_POST
def momo_create(request: HttpRequest) -> JsonResponse:
    return JsonResponse(momo.create(_body(request), base_url=_base_url(request)))


@csrf_exempt
@require_POST
def momo_query(request: HttpRequest) -> JsonResponse:
    return JsonResponse(momo.query(_body(request)))


def _language(order: WalletOrder) -> str:
    return "en" if order.extra.get("lang") == "en" else "vi"


def _page(
    request: HttpRequest,
    order: WalletOrder,
    *,
    wallet: str,
    via_app: bool,
    back_url: str,
    decide_url: str,
    decline_codes: list[tuple[Any, Any]],
) -> HttpResponse:
    response = render(
        request,
        "sandbox/wallet.html",
        {
            "order": order,
            "wallet": wallet,
            "wallet_code": order.wallet,
            "via_app": via_app,
            "merchant_name": str(settings.SANDBOX_MERCHANT_NAME),
            "amount": protocol.dong(order.amount * 100),
            "back_url": back_url,
            "decide_url": decide_url,
            "decline_codes": decline_codes,
            "ipn_modes": list(IPN_LABELS.items()),
            "ipn_default": bank.default_ipn_mode(),
            "ipn_delay_minutes": max(1, round(bank.ipn_delay().total_seconds() / 60)),
        },
    )
    response["Content-Security-Policy"] = _bank_page_policy(order.redirect_url)
    return response


@never_cache
@require_GET
def momo_pay(request: HttpRequest, token: str, via_app: bool = False) -> HttpResponse:
    """MoMo's web page (payUrl), or what its app shows (deeplink)."""
    order = momo.find(token)
    shop = momo.merchant()
    if order is None:
        raise Http404
    with translation.override(_language(order)):
        if shop is None:
            return _problem(request, code="11", reason=_("The sandbox MoMo has no merchant."))
        return _page(
            request,
            order,
            wallet="MoMo",
            via_app=via_app,
            back_url=momo.return_url(order, shop),
            decide_url=reverse("sandbox:momo-decide"),
            decline_codes=list(MOMO_DECLINES.items()),
        )


def _decision(request: HttpRequest) -> tuple[WalletOrder | None, str, str]:
    order_id = _uuid_or_none(request.POST.get("order"))
    order = WalletOrder.objects.filter(pk=order_id).first() if order_id else None
    return order, request.POST.get("decision", ""), request.POST.get("ipn", bank.default_ipn_mode())


@require_POST
def momo_decide(request: HttpRequest) -> HttpResponse:
    """Approve or decline in MoMo: record it, queue the IPN, send the browser back."""
    order, choice, ipn_mode = _decision(request)
    if order is None or order.wallet != WalletOrder.Wallet.MOMO:
        raise Http404
    with translation.override(_language(order)):
        if choice not in ("approve", "decline") or ipn_mode not in BankTransaction.IpnMode.values:
            return _problem(request, code="20", reason=_("Choose Approve or Decline."))
        reason = request.POST.get("reason", "1006")
        try:
            order = momo.decide(
                order_id=order.pk,
                approve=choice == "approve",
                decline_code=int(reason) if reason.isdigit() else 1006,
                ipn_mode=ipn_mode,
            )
        except bank.Refused as refused:
            return _problem(request, code=refused.code, reason=refused.reason)
        shop = momo.merchant()
        if shop is None:
            return _problem(request, code="11", reason=_("The sandbox MoMo has no merchant."))
        return redirect(momo.return_url(order, shop))


# --- ZaloPay ------------------------------------------------------------------------------------
@csrf_exempt
@require_POST
def zalopay_create(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    if not isinstance(body, dict):
        return JsonResponse({"return_code": 2, "sub_return_code": -401})
    return JsonResponse(zalopay.create(body, base_url=_base_url(request)))


@csrf_exempt
@require_POST
def zalopay_query(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    if not isinstance(body, dict):
        return JsonResponse({"return_code": 2, "sub_return_code": -401})
    return JsonResponse(zalopay.query(body))


@never_cache
@require_GET
def zalopay_openinapp(request: HttpRequest) -> HttpResponse:
    """ZaloPay's order link: the app on a phone, its web page elsewhere (here, one page)."""
    order = zalopay.find(request.GET.get("order", ""))
    shop = zalopay.merchant()
    if order is None:
        raise Http404
    if shop is None:
        return _problem(request, code="-402", reason=_("The sandbox ZaloPay has no merchant."))
    return _page(
        request,
        order,
        wallet="ZaloPay",
        via_app=False,
        back_url=zalopay.return_url(order, shop),
        decide_url=reverse("sandbox:zalopay-decide"),
        decline_codes=[],
    )


@require_POST
def zalopay_decide(request: HttpRequest) -> HttpResponse:
    """Approve or decline in ZaloPay: record it, queue the callback if paid, send the browser
    back."""
    order, choice, ipn_mode = _decision(request)
    if order is None or order.wallet != WalletOrder.Wallet.ZALOPAY:
        raise Http404
    if choice not in ("approve", "decline") or ipn_mode not in BankTransaction.IpnMode.values:
        return _problem(request, code="-401", reason=_("Choose Approve or Decline."))
    try:
        order = zalopay.decide(order_id=order.pk, approve=choice == "approve", ipn_mode=ipn_mode)
    except bank.Refused as refused:
        return _problem(request, code=refused.code, reason=refused.reason)
    shop = zalopay.merchant()
    if shop is None:
        return _problem(request, code="-402", reason=_("The sandbox ZaloPay has no merchant."))
    return redirect(zalopay.return_url(order, shop))
