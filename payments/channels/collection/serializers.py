"""Input and output shapes of the collection API (docs/interfaces.md, "Collection API")."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from common.error_messages import ERROR_MESSAGES
from common.localtime import GMT7
from customers.codes import InvalidCustomerCode, clean_customer_code

# Printable, no separators that would break a settlement CSV (`,` `;`) or a log line.
TRANSACTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
MAX_BILLS = 36  # three years of monthly bills: more than anyone owes


class StrictIntegerField(serializers.IntegerField):
    """Money is a JSON integer: "452160", 452160.0 and true are refused, not guessed at."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class CustomerCodeField(serializers.CharField):
    default_error_messages = {"invalid_customer_code": ERROR_MESSAGES["invalid_customer_code"]}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("help_text", _("Customer code (mã khách hàng) as printed on the bill."))
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            return clean_customer_code(super().to_internal_value(data))
        except InvalidCustomerCode:
            self.fail("invalid_customer_code")


class TransactionIdField(serializers.CharField):
    default_error_messages = {
        "invalid_transaction_id": _(
            "Use 1 to 64 letters, digits and . _ : / - (starting with a letter or digit)."
        )
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not TRANSACTION_ID.fullmatch(value):
            self.fail("invalid_transaction_id")
        return str(value)


class ClosedInput(serializers.Serializer):
    """A partner's request body, where a field we do not know is refused rather than ignored: a
    body signed for one purpose must not pass for another with its extra fields dropped, and a
    partner's typo (`paidAt`) must not silently fall back to a default."""

    default_error_messages = {"unknown_field": _("This field is not part of this request.")}

    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown or not isinstance(exc.detail, dict):
                raise
            errors = dict(exc.detail)
        else:
            if not unknown:
                return value
            errors = {}
        message = self.error_messages["unknown_field"]
        for name in unknown:
            errors[str(name)] = [serializers.ErrorDetail(str(message), code="unknown_field")]
        raise serializers.ValidationError(errors)


class ClosedInputSchema(OpenApiSerializerExtension):
    """Says so in the OpenAPI document: `additionalProperties: false` on every closed body."""

    target_class = ClosedInput
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class InquiryInput(ClosedInput):
    customer_code = CustomerCodeField()


class InquiryBill(serializers.Serializer):
    number = serializers.CharField(help_text=_("Bill number."))
    period = serializers.CharField(help_text=_("Billed month, YYYY-MM."))
    amount = serializers.IntegerField(help_text=_("Whole VND."))
    due_date = serializers.DateField()


class InquiryOutput(serializers.Serializer):
    customer_code = serializers.CharField()
    customer_name = serializers.CharField(
        help_text=_("The customer's full name, for the payer to confirm the payee.")
    )
    bills = InquiryBill(many=True, help_text=_("Unpaid bills, oldest first."))
    total_due = serializers.IntegerField(help_text=_("Sum of the unpaid bills, whole VND."))


class PaymentNoticeInput(ClosedInput):
    transaction_id = TransactionIdField(
        help_text=_("The partner's own transaction id: unique per partner, never reused.")
    )
    customer_code = CustomerCodeField()
    bill_numbers = serializers.ListField(
        child=serializers.CharField(max_length=32),
        allow_empty=False,
        max_length=MAX_BILLS,
        help_text=_("Exactly the bills paid, as the inquiry listed them."),
    )
    amount = StrictIntegerField(
        min_value=1, help_text=_("Whole VND; must equal the sum of the bills.")
    )
    paid_at = serializers.DateTimeField(
        default_timezone=GMT7,
        help_text=_("When the partner took the money, ISO 8601; without an offset it is GMT+7."),
    )

    def validate_bill_numbers(self, value: list[str]) -> list[str]:
        numbers = [number.strip() for number in value]
        if len(set(numbers)) != len(numbers):
            raise serializers.ValidationError(_("A bill is listed more than once."))
        return numbers


class PaymentNoticeOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["accepted"])
    payment_id = serializers.UUIDField()
    receipt_number = serializers.CharField(
        help_text=_("The portal's receipt number, to print on the customer's receipt.")
    )


class ReversalInput(ClosedInput):
    transaction_id = TransactionIdField(help_text=_("The transaction id of the payment notice."))
    reason = serializers.CharField(max_length=500, help_text=_("Why the payment is taken back."))


class ReversalOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["reversed"])
