"""The public payments API: start a payment, read it, and fetch its VietQR image."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ApiError
from common.error_messages import error_message
from common.openapi import ERROR_RESPONSES
from common.ratelimit import LookupThrottle, client_address
from payments import selectors, services
from payments.api.serializers import PaymentCreateInput, PaymentOutput
from payments.channels import registry
from payments.channels.common.pages import NotConfigured, PartnerUnavailable
from payments.channels.vietqr import image as vietqr
from payments.models import IdempotencyKey, Payment

IDEMPOTENCY_SCOPE = "payments.create"


def _payment_or_404(payment_id: Any) -> Payment:
    payment = selectors.payment_get(payment_id=payment_id)
    if payment is None:
        raise ApiError("payment_not_found", error_message("payment_not_found"), status_code=404)
    return payment


def _domain_error(exc: services.PaymentError) -> ApiError:
    return ApiError(
        exc.code,
        error_message(exc.code, exc.message, **exc.context),
        status_code=exc.http_status,
        fields={key: value for key, value in exc.context.items() if isinstance(value, list)},
    )


def _validated_input(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("invalid_request", _("The body must be a JSON object."))
    serializer = PaymentCreateInput(data=request.data)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    errors = serializer.errors
    code_errors = errors.get("customer_code") or []
    if code_errors and getattr(code_errors[0], "code", "") == "invalid_customer_code":
        raise ApiError(
            "invalid_customer_code",
            error_message("invalid_customer_code"),
            fields={"customer_code": [str(code_errors[0])]},
        )
    if "partner" in errors and set(errors) == {"partner"}:
        raise ApiError(
            "invalid_partner", str(errors["partner"][0]), fields={"partner": errors["partner"]}
        )
    raise ApiError(
        "invalid_request",
        _("Some fields are missing or invalid."),
        fields={name: [str(item) for item in items] for name, items in errors.items()},
    )


class PaymentListCreateView(APIView):
    # The lookup budget: an answer here also tells whether a customer code exists, and every
    # payment started costs status checks at the bank.
    throttle_classes = [LookupThrottle]

    @extend_schema(
        operation_id="payments_create",
        summary="Start a payment",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat a request safely: the same key and body return the first "
                "answer; the same key with another body is refused with 409.",
            ),
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before the next request.",
            ),
        ],
        request=PaymentCreateInput,
        examples=[
            OpenApiExample(
                "All unpaid bills by VietQR",
                value={"customer_code": "PA14HT0012345", "method": "vietqr"},
                description="The answer carries the QR payload, its images and the transfer "
                "details; the payment settles when the transfer arrives.",
                request_only=True,
            ),
            OpenApiExample(
                "Two bills through a bank's payment page",
                value={
                    "customer_code": "PA14HT0012345",
                    "bill_numbers": ["HD2610900045", "HD2609900045"],
                    "method": "redirect",
                    "partner": "SANDBOX",
                },
                description="The answer carries `redirect_url`: send the household there; the "
                "bank calls back and the payment settles.",
                request_only=True,
            ),
        ],
        responses={
            201: OpenApiResponse(PaymentOutput, description="A new pending payment."),
            200: OpenApiResponse(
                PaymentOutput,
                description="The customer's open payment of the same bills by the same method "
                "(and bank), returned instead of a new one.",
            ),
            **{code: ERROR_RESPONSES[code] for code in (400, 404, 409, 429, 502)},
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated_input(request)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ApiError("invalid_idempotency_key", _("Idempotency-Key is too long."))
        fingerprint = IdempotencyKey.fingerprint_of(data)
        if key:
            replay = _replay(key, fingerprint)
            if replay is not None:
                return replay
        wallet = False
        try:
            with transaction.atomic():
                claim = None
                if key:
                    claim = IdempotencyKey.claim(
                        scope=IDEMPOTENCY_SCOPE, key=key, fingerprint=fingerprint
                    )
                started = services.payment_start(
                    customer_code=data["customer_code"],
                    method=data["method"],
                    bill_numbers=data.get("bill_numbers"),
                    partner_code=data.get("partner"),
                )
                payment = started.payment
                answer = status.HTTP_201_CREATED if started.created else status.HTTP_200_OK
                if payment.method == Payment.Method.REDIRECT:
                    if payment.partner is None or not registry.offered(payment.partner):
                        raise NotConfigured("this partner offers no payment page here")
                    # A wallet's order is opened by a call to its server: after the commit.
                    wallet = registry.start_calls_partner(payment.partner)
                    if not wallet:
                        registry.start(
                            payment,
                            client_ip=client_address(request),
                            locale=getattr(request, "LANGUAGE_CODE", "vi"),
                        )
                body = PaymentOutput(_payment_or_404(payment.pk), context={"request": request}).data
                if claim is not None:
                    claim.payment = payment
                    claim.response_status = answer
                    claim.response_body = json.loads(json.dumps(body, default=str))
                    claim.save(update_fields=["payment", "response_status", "response_body"])
        except services.PaymentError as exc:
            raise _domain_error(exc) from None
        except NotConfigured:
            raise ApiError(
                "invalid_partner", error_message("invalid_partner"), status_code=400
            ) from None
        except IntegrityError:
            replay = _replay(key, fingerprint) if key else None
            if replay is None:
                raise
            return replay
        if wallet:
            body = self._open_wallet_order(request, payment, claim)
        return Response(body, status=answer)

    @staticmethod
    def _open_wallet_order(request: Request, payment: Payment, claim: Any) -> Any:
        """Have the wallet open the payment's order, outside any transaction; the answer's
        body, with the wallet's links (kept for a repeat of the same Idempotency-Key too)."""
        try:
            registry.start(
                payment,
                client_ip=client_address(request),
                locale=getattr(request, "LANGUAGE_CODE", "vi"),
            )
        except PartnerUnavailable as exc:
            # Not an answer to keep: the same key may try again (and continues the payment).
            if claim is not None:
                IdempotencyKey.objects.filter(pk=claim.pk).delete()
            if exc.refused:
                raise ApiError(
                    "invalid_partner", error_message("invalid_partner"), status_code=400
                ) from None
            raise ApiError(
                "partner_unavailable",
                _("The wallet did not answer. Try again later: the same payment is continued."),
                status_code=status.HTTP_502_BAD_GATEWAY,
            ) from None
        body = PaymentOutput(_payment_or_404(payment.pk), context={"request": request}).data
        if claim is not None:
            IdempotencyKey.objects.filter(pk=claim.pk).update(
                response_body=json.loads(json.dumps(body, default=str))
            )
        return body


def _replay(key: str, fingerprint: str) -> Response | None:
    record = IdempotencyKey.objects.filter(scope=IDEMPOTENCY_SCOPE, key=key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise ApiError(
            "idempotency_key_reused",
            _("This Idempotency-Key was already used with a different request."),
            status_code=status.HTTP_409_CONFLICT,
        )
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


class PaymentDetailView(APIView):
    @extend_schema(
        operation_id="payments_retrieve",
        summary="A payment and its current status",
        responses={200: PaymentOutput, 404: ERROR_RESPONSES[404]},
    )
    def get(self, request: Request, payment_id: str) -> Response:
        payment = _payment_or_404(payment_id)
        return Response(PaymentOutput(payment, context={"request": request}).data)


def _qr_payload_or_404(payment_id: Any) -> str:
    payment = Payment.objects.filter(pk=payment_id, method=Payment.Method.VIETQR).first()
    if payment is None:
        raise ApiError("payment_not_found", _("No VietQR payment has this id."), status_code=404)
    return vietqr.payment_qr_payload(payment)


class PaymentQRPngView(APIView):
    @extend_schema(
        operation_id="payments_qr_png",
        summary="The payment's VietQR as a PNG image",
        responses={
            (200, "image/png"): OpenApiResponse(description="PNG image"),
            404: ERROR_RESPONSES[404],
        },
    )
    def get(self, request: Request, payment_id: str) -> HttpResponse:
        png = vietqr.render_png(_qr_payload_or_404(payment_id))
        return _image(png, "image/png")


class PaymentQRSvgView(APIView):
    @extend_schema(
        operation_id="payments_qr_svg",
        summary="The payment's VietQR as an SVG image",
        responses={
            (200, "image/svg+xml"): OpenApiResponse(description="SVG image"),
            404: ERROR_RESPONSES[404],
        },
    )
    def get(self, request: Request, payment_id: str) -> HttpResponse:
        svg = vietqr.render_svg(_qr_payload_or_404(payment_id))
        return _image(svg, "image/svg+xml")


def _image(content: bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    # The QR of a payment never changes; phones may keep it while the customer pays.
    response["Cache-Control"] = "private, max-age=3600"
    return response
