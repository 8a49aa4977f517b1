"""A realistic household for page tests and screenshots: a year of bills in Hà Tĩnh."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone

from customers.models import Bill, Customer
from payments import services
from tests import factories

# What a household with a fridge, fans and one air conditioner uses in Hà Tĩnh: hot, humid
# summers (the Lào wind), mild winters.
KWH_BY_MONTH = {
    1: 165, 2: 148, 3: 172, 4: 236, 5: 318, 6: 402,
    7: 418, 8: 376, 9: 291, 10: 214, 11: 178, 12: 169,
}  # fmt: skip

# EVN's residential block tariff (VND per kWh before VAT), then 8% VAT.
_TIERS = ((50, 1_984), (100, 2_050), (200, 2_380), (300, 2_998), (400, 3_350), (None, 3_460))


def bill_amount(kwh: int) -> int:
    charge, lower = 0, 0
    for upper, price in _TIERS:
        top = kwh if upper is None else min(kwh, upper)
        if top > lower:
            charge += (top - lower) * price
        if upper is None or kwh <= upper:
            break
        lower = upper
    return (charge * 108 + 50) // 100


def months_ago(count: int) -> datetime.date:
    today = timezone.localdate().replace(day=1)
    year, month = divmod(today.year * 12 + today.month - 1 - count, 12)
    return datetime.date(year, month + 1, 1)


@dataclass
class Household:
    customer: Customer
    bills: list[Bill]  # oldest first

    @property
    def unpaid(self) -> list[Bill]:
        return [bill for bill in self.bills if bill.status == Bill.Status.UNPAID]


def household_with_history(
    *,
    code: str = "PA14HT0012345",
    name: str = "Trần Thị Hồng Nhung",
    address: str = "Số 45, ngõ 12 đường Hà Huy Tập, phường Nam Hà, TP Hà Tĩnh",
    phone: str = "0912 345 678",
    email: str = "nhung.tran@example.vn",
    months: int = 12,
    unpaid: int = 2,
) -> Household:
    """A customer with `months` monthly bills; the newest `unpaid` are unpaid.

    The newest bill is due in ten days; the one before it is twenty days overdue. Older bills
    were paid through the services, as the counters and partner banks would have.
    """
    customer = factories.CustomerFactory(
        code=code, name=name, address=address, phone=phone, email=email
    )
    today = timezone.localdate()
    bills = []
    for age in range(months, 0, -1):
        period = months_ago(age)
        kwh = KWH_BY_MONTH[period.month]
        if age == 1:
            due = today + datetime.timedelta(days=10)
        elif age == 2:
            due = today - datetime.timedelta(days=20)
        else:
            due = period + datetime.timedelta(days=45)
        bills.append(
            factories.BillFactory(
                customer=customer,
                number=f"HD{period:%y%m}{code[-6:]}",
                period=period,
                kwh=kwh,
                amount=bill_amount(kwh),
                due_date=due,
            )
        )
    for index, bill in enumerate(bills[: len(bills) - unpaid]):
        # Half at the power company's counter, half through a partner's app.
        cash = index % 2 == 0
        services.payment_record_settled(
            customer_code=code,
            method="cash" if cash else "collection",
            partner_code="COUNTER" if cash else "SANDBOX",
            bill_numbers=[bill.number],
            report=services.Report(source=services.Source.AGENT if cash else "collection"),
            provider_txn_id="" if cash else f"FT{bill.number}",
        )
    for bill in bills:
        bill.refresh_from_db()
    return Household(customer=customer, bills=bills)
