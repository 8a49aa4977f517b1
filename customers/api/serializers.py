"""Output shape of the lookup API (docs/interfaces.md, "Bills of a customer").

Built from `customers.selectors.CustomerBills`, which holds only masked, public data: there is
no phone or e-mail field to leak, even by mistake.
"""

from __future__ import annotations

import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^\d{4}-(0[1-9]|1[0-2])$",
        "example": "2025-03",
        "description": "Billing period, YYYY-MM.",
    }
)
class PeriodField(serializers.Field):
    """A billing month as `YYYY-MM`, the form used by the billing data files."""

    def to_representation(self, value: datetime.date) -> str:
        return value.strftime("%Y-%m")


class ServiceAreaOutput(serializers.Serializer):
    code = serializers.CharField(
        source="service_area_code", help_text="Code of the district branch (Điện lực)."
    )
    name = serializers.CharField(
        source="service_area_name", help_text="Name of the district branch."
    )


class CustomerOutput(serializers.Serializer):
    code = serializers.CharField(help_text="The normalised customer code (mã khách hàng).")
    name = serializers.CharField(
        help_text="Masked: the family name, then the initials of the other names "
        "(`Nguyễn V** A**`)."
    )
    address = serializers.CharField(
        help_text="Masked: the house and street hidden, at most the last two parts kept "
        "(`***, phường Bắc Hà, TP Hà Tĩnh`)."
    )
    service_area = ServiceAreaOutput(source="*", help_text="The customer's district branch.")


class BillOutput(serializers.Serializer):
    number = serializers.CharField(help_text="Bill number, as printed on the bill.")
    period = PeriodField(help_text="Billing period, YYYY-MM.")
    kwh = serializers.IntegerField(min_value=0, help_text="Electricity used in the period, kWh.")
    amount = serializers.IntegerField(min_value=0, help_text="Whole VND (VND has no minor unit).")
    due_date = serializers.DateField(help_text="Last day to pay, YYYY-MM-DD.")
    status = serializers.ChoiceField(
        choices=[("unpaid", "unpaid"), ("paid", "paid")], help_text="Whether the bill is paid."
    )


class CustomerBillsOutput(serializers.Serializer):
    customer = CustomerOutput(source="*", help_text="Who the bills belong to, masked.")
    bills = BillOutput(
        many=True,
        help_text="Bills of the customer's last 12 billing periods, newest first, then any "
        "older bill still unpaid.",
    )
    total_due = serializers.IntegerField(
        min_value=0, help_text="Sum of the amounts of the unpaid bills, whole VND."
    )
