"""GET /api/v1/customers/{code}/bills/: the public lookup, as docs/interfaces.md describes it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from common.api import error_body
from common.openapi import ERROR_RESPONSES
from common.ratelimit import client_address
from customers.api.answer import bills_response
from customers.api.serializers import CustomerBillsOutput

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
    """Declared as a DRF view so that the schema describes it, and answered by the lookup API's
    one rule (customers.api.answer) without DRF's request wrapping, authentication, negotiation
    and rendering, which cost more than the lookup itself (measured) and which it never uses.
    Production requests do not reach it: config/wsgi.py hands them to config/lookups.py,
    which calls the same rule."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The language DefaultLanguageMiddleware chose, active for this request.
        return bills_response(
            method=request.method or "",
            code=kwargs["code"],
            client=client_address(request),
            language=translation.get_language(),
        )

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
        """What the schema describes; `dispatch` answers every method, GET included."""
        return self.dispatch(request, code=code)
