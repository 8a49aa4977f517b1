"""GET /api/v1/customers/{code}/bills/: the public lookup, as docs/interfaces.md describes it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from customers import selectors
from customers.api.serializers import CustomerBillsOutput
from customers.codes import InvalidCustomerCode, clean_customer_code
from portal.api import error_body, error_response
from portal.openapi import ERROR_RESPONSES
from portal.ratelimit import lookup_hit_and_get
from portal.views.errors import too_many_requests

_EXAMPLE = {
    "customer": {
        "code": "PA14HT0012345",
        "name": "Nguyễn V** A**",
        "address": "***, phường Bắc Hà, TP Hà Tĩnh",
        "service_area": {"code": "PA14HT", "name": "Điện lực Thành phố Hà Tĩnh"},
    },
    "bills": [
        {
            "number": "HD2503001234",
            "period": "2025-03",
            "kwh": 215,
            "amount": 512_352,
            "due_date": "2025-04-15",
            "status": "unpaid",
        },
        {
            "number": "HD2502001234",
            "period": "2025-02",
            "kwh": 168,
            "amount": 376_380,
            "due_date": "2025-03-15",
            "status": "paid",
        },
    ],
    "total_due": 512_352,
}


class CustomerBillsView(APIView):
    """Declared as a DRF view so that the schema describes it, and served as a plain Django
    view: DRF's request wrapping, authentication, negotiation and rendering cost more than the
    lookup itself on the portal's busiest endpoint (measured), and it uses none of them."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = error_response(
                "method_not_allowed", _("This address only answers GET requests."), 405
            )
            response["Allow"] = "GET, HEAD"
            return response
        return self.get(request, **kwargs)

    @extend_schema(
        operation_id="customers_bills_list",
        summary="Bills of a customer",
        description=(
            "The bills of the customer's last 12 billing periods, newest first, with the "
            "customer's name and address masked and the total still due. The code is "
            "normalised first (spaces, dashes and dots removed, upper-cased) and must then "
            "match the configured pattern (by default 13 characters, e.g. `PA14HT0012345`). "
            "Lookups are rate limited per client address, together with the bills page."
        ),
        tags=["customers"],
        parameters=[
            OpenApiParameter(
                "code",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="Customer code (mã khách hàng) as printed on the bill; case, "
                "spaces and dashes do not matter.",
                examples=[OpenApiExample("A customer code", value="PA14HT0012345")],
            ),
            OpenApiParameter(
                "Retry-After",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before the next lookup.",
            ),
        ],
        responses={
            200: OpenApiResponse(
                CustomerBillsOutput,
                description="The customer's bills and the total due; name and address masked.",
            ),
            400: ERROR_RESPONSES[400],
            404: ERROR_RESPONSES[404],
            429: ERROR_RESPONSES[429],
        },
        examples=[
            OpenApiExample("Bills found", value=_EXAMPLE, response_only=True, status_codes=[200]),
            OpenApiExample(
                "Malformed code",
                value=error_body(
                    "invalid_customer_code",
                    "This is not a valid customer code.",
                    {"code": ["A customer code has 13 letters and digits, e.g. PA14HT0012345."]},
                ),
                response_only=True,
                status_codes=[400],
            ),
            OpenApiExample(
                "Unknown code",
                value=error_body("customer_not_found", "No customer has this code."),
                response_only=True,
                status_codes=[404],
            ),
            OpenApiExample(
                "Too many lookups",
                value=error_body(
                    "rate_limited", "Too many requests. Please wait a moment and try again."
                ),
                response_only=True,
                status_codes=[429],
            ),
        ],
    )
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            clean = clean_customer_code(code)
        except InvalidCustomerCode:
            clean = ""
        # One budget per client address, shared with the bills page (LOOKUP_RATE_LIMIT), counted
        # in the same Redis round trip as the cached answer is read.
        decision, cached = lookup_hit_and_get(
            request, cached=selectors.bills_cache_key(clean) if clean else None
        )
        if not decision.allowed:
            return too_many_requests(request, retry_after=decision.retry_after)
        if not clean:
            response = error_response(
                "invalid_customer_code",
                _("This is not a valid customer code."),
                400,
                fields={
                    "code": [_("A customer code has 13 letters and digits, e.g. PA14HT0012345.")]
                },
            )
        else:
            lookup = selectors.customer_bills_lookup(code=clean, cached=cached)
            if lookup is None:
                response = error_response(
                    "customer_not_found", _("No customer has this code."), 404
                )
            else:
                # The serializer documents the shape; the body is built directly, which is
                # several times cheaper, and a test holds the two together.
                response = JsonResponse(
                    selectors.lookup_api_body(lookup),
                    json_dumps_params={"ensure_ascii": False, "separators": (",", ":")},
                )
        # Personal data, however masked: no shared cache keeps it.
        add_never_cache_headers(response)
        return response
