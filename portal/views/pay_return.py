"""Where the partner (a bank's page, a wallet) sends the customer's browser back. It shows; it
never settles by itself.

The signed return only tells us what the partner showed the customer. The payment page the
customer lands on shows the payment's real state and refreshes itself until a worker, asking the
partner's status query (or applying its notification), settles it. Each protocol reads its own
return (`PageChannel.return_verify`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from payments import poller, states
from payments.channels import registry
from payments.channels.common.pages import InvalidReturn, NotConfigured
from payments.channels.common.results import Result


def _problem(request: HttpRequest, *, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "errors/error.html", {"title": title, "message": message}, status=status)


@never_cache
@require_GET
def pay_return(request: HttpRequest, partner: str) -> HttpResponse:
    partner_obj = registry.page_partner(partner)
    # The values exactly as received: the signature covers them.
    params = {key: str(value) for key, value in request.GET.items()}
    try:
        if partner_obj is None:
            raise InvalidReturn
        report = registry.channel_for(partner_obj).return_verify(partner=partner_obj, params=params)
    except (InvalidReturn, NotConfigured):
        return _problem(
            request,
            title=_("We could not verify this answer from the bank"),
            message=_(
                "Your payment's status will be confirmed directly with the bank. "
                "Please look up your bills again in a few minutes."
            ),
            status=400,
        )
    if report.payment is None:
        return _problem(
            request,
            title=_("We could not find this payment"),
            message=_(
                "The bank sent you back with a payment we do not know. If money was taken, "
                "please call the customer care hotline with your bank's receipt."
            ),
            status=404,
        )
    target = reverse("pay", args=[report.payment.pk])
    if report.payment.status in states.SETTLEABLE:
        poller.payment_request_poll(payment_id=report.payment.pk)
        # What the bank showed the household, for the page to say in one message (never
        # applied: the page's state stays the payment's own until the bank confirms).
        if report.result is Result.SUCCESS:
            target += "?" + urlencode({"bank": "ok"})
        elif report.result is Result.FAILED:
            target += "?" + urlencode({"bank": "declined", "reason": report.code})
    return redirect(target)
