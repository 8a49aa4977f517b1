"""The pay link printed on a bill (`/b/{token}/`): that bill, its QR and a bank to pay through,
with no code to type. The link went to the household only, so the name is shown in full; but a
link is not a login, and nothing else of theirs is."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from customers.models import Bill
from customers.paylinks import bill_id_of_token
from payments.channels.vietqr import image as vietqr
from payments.references import bill_reference
from portal.views.lookup import usable_gateways


def _bill_or_404(token: str) -> Bill:
    bill_id = bill_id_of_token(token, today=timezone.localdate())
    bill = Bill.objects.select_related("customer").filter(pk=bill_id).first() if bill_id else None
    if bill is None:
        raise Http404("no such link")
    return bill


@never_cache
@require_safe
def bill_page(request: HttpRequest, token: str) -> HttpResponse:
    bill = _bill_or_404(token)
    context = {
        "bill": bill,
        "token": token,
        "reference": bill_reference(bill.pk),
        "gateways": usable_gateways(),
        "bank_name": vietqr.account_name(),
        "account": settings.VIETQR_ACCOUNT,
    }
    response = render(request, "pay/bill.html", context)
    response["X-Robots-Tag"] = "noindex, nofollow"
    # The token is the link: never passed on to another site (the bank included).
    response["Referrer-Policy"] = "same-origin"
    return response


@require_safe
def bill_qr(request: HttpRequest, token: str) -> HttpResponse:
    bill = _bill_or_404(token)
    if bill.is_paid:
        raise Http404("paid")
    svg = vietqr.render_svg(vietqr.bill_qr_payload(bill_id=bill.pk, amount=bill.amount))
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=3600"
    return response
