"""Where the bank sends the customer's browser back. It shows; it never settles by itself.

The signed return only tells us what the bank showed the customer. The payment page the customer
lands on shows the payment's real state and refreshes itself until a worker, asking the bank's
query API (or applying the bank's IPN), settles it.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from payments import poller, states
from payments.channels.vnpay import gateway
from payments.channels.vnpay import protocol as vnpay

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


def _problem(request: HttpRequest, *, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "errors/error.html", {"title": title, "message": message}, status=status)


@never_cache
@require_GET
def pay_return(request: HttpRequest, partner: str) -> HttpResponse:
    partner_obj = gateway.gateway_partner(partner)
    # The values exactly as received: the signature covers them.
    params = {key: str(value) for key, value in request.GET.items() if key.startswith("vnp_")}
    try:
        if partner_obj is None:
            raise gateway.InvalidReturn
        report = gateway.return_verify(partner=partner_obj, params=params)
    except gateway.InvalidReturn:
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
    if report.payment.status in states.SETTLEABLE:
        poller.payment_request_poll(payment_id=report.payment.pk)
        if report.result is vnpay.Result.SUCCESS:
            messages.info(
                request,
                _("Your bank says the payment went through. We are confirming it with the bank."),
            )
        elif report.result is vnpay.Result.FAILED:
            reason = BANK_REASONS.get(report.response_code)
            messages.error(
                request,
                _("Your bank did not complete the payment: %(reason)s.") % {"reason": reason}
                if reason
                else _("Your bank did not complete the payment."),
            )
    return redirect("pay", payment_id=report.payment.pk)
