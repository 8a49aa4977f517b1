"""Where the bank sends the customer's browser back. It shows; it never settles by itself."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from payments import gateway
from payments.models import Partner, Payment
from payments.providers import vnpay


@require_GET
def pay_return(request: HttpRequest, partner: str) -> HttpResponse:
    partner_obj = Partner.objects.filter(code=partner.upper(), offers_redirect=True).first()
    if partner_obj is None:
        raise Http404
    params = {key: str(value) for key, value in request.GET.items() if key.startswith("vnp_")}
    if not vnpay.verify(params, partner_obj.secret):
        return render(
            request,
            "errors/error.html",
            {
                "title": _("We could not verify this answer from the bank"),
                "message": _(
                    "Your payment's status will be confirmed directly with the bank. "
                    "Please look up your bills again in a few minutes."
                ),
            },
            status=400,
        )
    payment = Payment.objects.filter(
        reference=params.get("vnp_TxnRef", ""), partner=partner_obj
    ).first()
    if payment is None:
        raise Http404
    # The signed return is a hint, not proof: ask the bank now, off the request.
    gateway.payment_request_poll(payment_id=payment.id)
    return redirect("pay", payment_id=payment.id)
