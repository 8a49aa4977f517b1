"""Input and output shapes of the public payments API (docs/interfaces.md, "Start a payment")."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.error_messages import ERROR_MESSAGES
from customers.codes import InvalidCustomerCode, clean_customer_code
from payments.channels.vietqr import image as vietqr
from payments.models import Payment


class PaymentCreateInput(serializers.Serializer):
    customer_code = serializers.CharField(max_length=40, help_text="Customer code (mã khách hàng).")
    bill_numbers = serializers.ListField(
        child=serializers.CharField(max_length=32),
        required=False,
        allow_empty=False,
        max_length=36,
        help_text="Bills to pay; all unpaid bills of the customer when omitted.",
    )
    method = serializers.ChoiceField(choices=["vietqr", "redirect"])
    partner = serializers.CharField(
        max_length=20,
        required=False,
        help_text="Partner code, for `redirect` only: a bank's page (e.g. SANDBOX) or a wallet "
        "(MOMO, ZALOPAY).",
    )

    def validate_customer_code(self, value: str) -> str:
        try:
            return clean_customer_code(value)
        except InvalidCustomerCode:
            raise serializers.ValidationError(
                ERROR_MESSAGES["invalid_customer_code"], code="invalid_customer_code"
            ) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["method"] == "redirect" and not attrs.get("partner"):
            raise serializers.ValidationError(
                {"partner": [_("Choose the bank to pay through.")]}, code="required"
            )
        return attrs


class QRSerializer(serializers.Serializer):
    payload = serializers.CharField(help_text="EMVCo/VietQR payload to encode in a QR code.")
    png_url = serializers.URLField()
    svg_url = serializers.URLField()
    bank_bin = serializers.CharField()
    account = serializers.CharField()
    account_name = serializers.CharField()
    content = serializers.CharField(help_text="The reference the transfer note must carry.")


class PaymentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    reference = serializers.CharField()
    status = serializers.ChoiceField(choices=Payment.Status.choices)
    amount = serializers.IntegerField(help_text="Whole VND.")
    currency = serializers.SerializerMethodField()
    method = serializers.CharField()
    partner = serializers.SerializerMethodField()
    bills = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    succeeded_at = serializers.DateTimeField(allow_null=True)
    redirect_url = serializers.SerializerMethodField()
    app_url = serializers.SerializerMethodField()
    qr = serializers.SerializerMethodField()

    def get_currency(self, payment: Payment) -> str:
        return "VND"

    def get_partner(self, payment: Payment) -> str | None:
        return payment.partner.code if payment.partner else None

    def get_bills(self, payment: Payment) -> list[str]:
        return [line.bill.number for line in payment.lines.all()]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_redirect_url(self, payment: Payment) -> str | None:
        if payment.method != Payment.Method.REDIRECT:
            return None
        return payment.provider_data.get("redirect_url")

    @extend_schema_field(
        serializers.CharField(
            allow_null=True,
            help_text="For a wallet (MOMO, ZALOPAY): the link that opens the wallet's app on a "
            "phone (ZaloPay's is its one link, also `redirect_url`); null otherwise.",
        )
    )
    def get_app_url(self, payment: Payment) -> str | None:
        if payment.method != Payment.Method.REDIRECT:
            return None
        return payment.provider_data.get("app_url") or None

    @extend_schema_field(QRSerializer(allow_null=True))
    def get_qr(self, payment: Payment) -> dict[str, Any] | None:
        if payment.method != Payment.Method.VIETQR:
            return None
        request = self.context["request"]
        from django.conf import settings

        return {
            "payload": vietqr.payment_qr_payload(payment),
            "png_url": request.build_absolute_uri(reverse("payment-qr-png", args=[payment.id])),
            "svg_url": request.build_absolute_uri(reverse("payment-qr-svg", args=[payment.id])),
            "bank_bin": settings.VIETQR_BIN,
            "account": settings.VIETQR_ACCOUNT,
            "account_name": vietqr.account_name(),
            "content": payment.reference,
        }
