"""The household's first pages: type the customer code, see the bills."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from customers import selectors
from customers.codes import InvalidCustomerCode, clean_customer_code
from customers.masking import mask_address, mask_name
from payments.models import Partner


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("code")
    if raw is not None:
        try:
            return redirect("bills", code=clean_customer_code(raw))
        except InvalidCustomerCode:
            return render(
                request,
                "portal/home.html",
                {"code": raw, "error": _("This is not a valid customer code.")},
                status=400,
            )
    return render(request, "portal/home.html", {})


@require_GET
def bills(request: HttpRequest, code: str) -> HttpResponse:
    try:
        code = clean_customer_code(code)
    except InvalidCustomerCode:
        return render(
            request,
            "portal/home.html",
            {"code": code, "error": _("This is not a valid customer code.")},
            status=400,
        )
    customer = selectors.customer_get_by_code(code=code)
    if customer is None:
        return render(
            request,
            "portal/home.html",
            {"code": code, "error": _("No customer has this code. Please check your bill.")},
            status=404,
        )
    recent = selectors.bill_list_recent(customer=customer)
    unpaid = [bill for bill in recent if not bill.is_paid]
    gateways = [p for p in Partner.objects.filter(offers_redirect=True) if p.is_usable]
    return render(
        request,
        "portal/bills.html",
        {
            "customer": customer,
            "customer_name": mask_name(customer.name),
            "customer_address": mask_address(customer.address),
            "bills": recent,
            "unpaid": sorted(unpaid, key=lambda bill: bill.period),
            "total_due": sum(bill.amount for bill in unpaid),
            "gateways": gateways,
        },
    )
