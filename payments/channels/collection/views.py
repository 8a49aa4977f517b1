"""The collection API's three operations: thin views over `collection.handling`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.openapi import ERROR_RESPONSES
from payments.channels.collection import handling, signing
from payments.channels.collection.auth import PartnerCaller, PartnerSignatureAuthentication
from payments.channels.collection.serializers import (
    InquiryInput,
    InquiryOutput,
    PaymentNoticeInput,
    PaymentNoticeOutput,
    ReversalInput,
    ReversalOutput,
)
from payments.models import InboundMessage

TAGS = ["collection"]
REPLAYED_HEADER = "Idempotent-Replayed"


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: ERROR_RESPONSES[code] for code in codes}


class CollectionView(APIView):
    """Signed by a partner (see `auth`); the body is read raw, exactly as it was signed."""

    authentication_classes = [PartnerSignatureAuthentication]
    permission_classes = [IsAuthenticated]
    inbox_kind: str = InboundMessage.Kind.INQUIRY

    def caller(self, request: Request) -> PartnerCaller:
        assert isinstance(request.auth, PartnerCaller)  # noqa: S101 - the authenticator's promise
        return request.auth

    def inbox_headers(self, request: Request) -> dict[str, str]:
        return self.caller(request).headers_for_inbox(request._request)

    def respond(self, answer: handling.Answer) -> Response:
        response = Response(answer.body, status=answer.status)
        if answer.replayed:
            response[REPLAYED_HEADER] = "true"
        return response


class InquiryView(CollectionView):
    inbox_kind = InboundMessage.Kind.INQUIRY

    @extend_schema(
        operation_id="collection_inquiry",
        summary="What a customer owes",
        description=(
            "Unpaid bills of a customer, oldest first, and their total. The customer's full "
            "name is returned so the payer can confirm the payee. A customer with nothing to pay "
            "gets an empty list and `total_due` 0."
        ),
        tags=TAGS,
        request=InquiryInput,
        responses={200: InquiryOutput, **_errors(400, 401, 404)},
        examples=[
            OpenApiExample("Inquiry", value={"customer_code": "PA14HT0012345"}, request_only=True)
        ],
    )
    def post(self, request: Request) -> Response:
        answer = handling.collection_inquiry(
            caller=self.caller(request), headers=self.inbox_headers(request)
        )
        return self.respond(answer)


class PaymentNoticeView(CollectionView):
    inbox_kind = InboundMessage.Kind.COLLECTION

    @extend_schema(
        operation_id="collection_payment_notice",
        summary="The partner took money for these bills",
        description=(
            "Pays exactly the named bills; `amount` must be their sum. Idempotent per "
            "`transaction_id`: the same notice again gets the first answer (200 instead of 201 "
            "for a success, header `Idempotent-Replayed: true`); a different notice with the same "
            "`transaction_id` gets 409 `transaction_id_reused`. Errors: 404 `customer_not_found`, "
            "404 `bill_not_found`, 409 `bill_already_paid`, 422 `amount_mismatch`, 400 for a "
            "malformed body."
        ),
        tags=TAGS,
        request=PaymentNoticeInput,
        responses={
            201: PaymentNoticeOutput,
            200: OpenApiResponse(PaymentNoticeOutput, description="The same notice again."),
            **_errors(400, 401, 404, 409, 422),
        },
        examples=[
            OpenApiExample(
                "Payment notice",
                value={
                    "transaction_id": "VCB20261127000123",
                    "customer_code": "PA14HT0012345",
                    "bill_numbers": ["HD2026100012345"],
                    "amount": 452160,
                    "paid_at": "2026-11-27T09:15:02+07:00",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        answer = handling.collection_payment_notice(
            caller=self.caller(request), headers=self.inbox_headers(request)
        )
        return self.respond(answer)


class ReversalView(CollectionView):
    inbox_kind = InboundMessage.Kind.REVERSAL

    @extend_schema(
        operation_id="collection_reversal",
        summary="Take back a payment of today",
        description=(
            "Only on the business day (GMT+7) of the payment's `paid_at`; afterwards 409 "
            "`reversal_window_closed`. The bills become unpaid again and the reason is recorded. "
            "Reversing a reversed payment answers `reversed` again. 404 `transaction_not_found` "
            "when none of your payments has this transaction id."
        ),
        tags=TAGS,
        request=ReversalInput,
        responses={200: ReversalOutput, **_errors(400, 401, 404, 409)},
    )
    def post(self, request: Request) -> Response:
        answer = handling.collection_reversal(
            caller=self.caller(request), headers=self.inbox_headers(request)
        )
        return self.respond(answer)


# The worked example of docs/collection-api.md, its signature computed here by the portal's own
# code, so the page can never show a signature the portal would refuse.
EXAMPLE_SECRET = "vcb-collection-secret-0123456789abcdef"  # noqa: S105 - published, refused in production
EXAMPLE_TIMESTAMP = "1764209702"
EXAMPLE_PATH = "/api/v1/collection/inquiry/"
EXAMPLE_BODY = '{"customer_code":"PA14HT0012345"}'
EXAMPLE_SIGNATURE = signing.sign(
    EXAMPLE_SECRET, EXAMPLE_TIMESTAMP, "POST", EXAMPLE_PATH, EXAMPLE_BODY.encode()
)
WORKED_EXAMPLE = (
    "**Computing a signature, worked example.** With the secret "
    f"`{EXAMPLE_SECRET}`, timestamp `{EXAMPLE_TIMESTAMP}`, method `POST`, path "
    f"`{EXAMPLE_PATH}` and body `{EXAMPLE_BODY}`, the string signed is the four joined by "
    "newlines (none at the end) and the signature is "
    f"`{EXAMPLE_SIGNATURE}`. From a shell:\n\n"
    f"    printf '%s\\n%s\\n%s\\n%s' {EXAMPLE_TIMESTAMP} POST {EXAMPLE_PATH} '{EXAMPLE_BODY}' \\\n"
    f"      | openssl dgst -sha256 -hmac '{EXAMPLE_SECRET}'\n\n"
    "**Trying it in development** (`make run`): start the portal with "
    f"`PARTNER_VCB_SECRET={EXAMPLE_SECRET}` and call as partner `VCB` with that secret. This "
    "secret is published, so production refuses to start with it."
)

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "Collection API for partner banks",
    "DESCRIPTION": (
        "For the utility's collecting banks and intermediaries: look up what a customer owes, "
        "report a payment taken in the partner's app or counter, and reverse it on the same "
        "business day (GMT+7).\n\n"
        "Every request carries `X-Partner-Code`, `X-Timestamp` (Unix seconds, within ±300 s "
        "of the portal's clock) and `X-Signature`: the lower-case hex HMAC-SHA256, keyed with "
        'the partner\'s secret, of `"{X-Timestamp}\\n{METHOD}\\n{path}\\n{raw request body}"` '
        "(METHOD in upper case, path without host or query string, e.g. "
        "`/api/v1/collection/payments/`). Anything else is answered 401. Unknown fields in a "
        "body are refused with 400. The same signed request sent again inside the 300 s window "
        "gets the first answer (header `Idempotent-Replayed: true`) and has no second effect.\n\n"
        'Errors always have the shape `{"error": {"code", "message", "fields"}}`.\n\n'
        + WORKED_EXAMPLE
    ),
    "VERSION": "1.0.0",
    "PREPROCESSING_HOOKS": ["payments.channels.collection.openapi.collection_endpoints_only"],
    "SCHEMA_PATH_PREFIX": "/api/v1/collection/",
}


def schema_view() -> Any:
    return SpectacularAPIView.as_view(custom_settings=SCHEMA_SETTINGS)


class CollectionDocsView(SpectacularSwaggerSplitView):
    """The Swagger UI for partners; its script is served separately, as the CSP requires."""

    url_name = "collection-schema"
    title = SCHEMA_SETTINGS["TITLE"]
