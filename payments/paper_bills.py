"""What the printing house needs to print a period's bills: each unpaid bill's reference, VietQR
payload and pay link, streamed from the database (a province's bills never sit in memory)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from customers import paylinks
from customers.models import Bill
from payments import references
from payments.channels.vietqr import image as vietqr

COLUMNS = (
    "bill_number",
    "customer_code",
    "amount",
    "due_date",
    "reference",
    "qr_payload",
    "pay_url",
)
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class PrintedBill:
    bill_number: str
    customer_code: str
    amount: int
    due_date: datetime.date
    reference: str
    qr_payload: str
    pay_url: str

    def as_row(self) -> tuple[str | int, ...]:
        return (
            self.bill_number,
            self.customer_code,
            self.amount,
            self.due_date.isoformat(),
            self.reference,
            self.qr_payload,
            self.pay_url,
        )

    @property
    def svg_name(self) -> str:
        """The QR image's file name: the bill number made safe for any file system, then the
        bill's reference, which alone keeps `HD/26/1` and `HD_26_1` from sharing a file (and a
        household from scanning another bill's QR)."""
        return f"{_UNSAFE_IN_NAME.sub('_', self.bill_number)}-{self.reference}.svg"


def printed_bills(*, period: datetime.date, area_code: str | None = None) -> Iterator[PrintedBill]:
    """The unpaid bills of the period (of one service area, if given), in bill order."""
    bills = Bill.objects.filter(period=period, status=Bill.Status.UNPAID, amount__gt=0)
    if area_code:
        bills = bills.filter(customer__service_area__code=area_code)
    rows = bills.order_by("pk").values_list("pk", "number", "customer__code", "amount", "due_date")
    for bill_id, number, code, amount, due_date in rows.iterator(chunk_size=5000):
        yield PrintedBill(
            bill_number=number,
            customer_code=code,
            amount=amount,
            due_date=due_date,
            reference=references.bill_reference(bill_id),
            qr_payload=vietqr.bill_qr_payload(bill_id=bill_id, amount=amount),
            pay_url=paylinks.pay_url(bill_id=bill_id, due_date=due_date),
        )


def write_svg(bill: PrintedBill, directory: Path) -> None:
    # "x": an image already there (an earlier export into the same folder) is an error, never
    # silently replaced.
    with (directory / bill.svg_name).open("xb") as handle:
        handle.write(vietqr.render_svg(bill.qr_payload))
