"""Reads of customers and bills, shaped for the pages and APIs that show them."""

from __future__ import annotations

from django.db.models import QuerySet

from customers.models import Bill, Customer

HISTORY_PERIODS = 12


def customer_get_by_code(*, code: str) -> Customer | None:
    """One indexed query (unique code), with the service area joined."""
    return Customer.objects.select_related("service_area").filter(code=code, is_active=True).first()


def bill_list_recent(*, customer: Customer, periods: int = HISTORY_PERIODS) -> list[Bill]:
    """The customer's bills of the last `periods` billing months, newest first: one query."""
    return list(customer.bills.order_by("-period")[:periods])


def bill_list_unpaid(*, customer: Customer) -> QuerySet[Bill]:
    return customer.bills.filter(status=Bill.Status.UNPAID).order_by("period")
