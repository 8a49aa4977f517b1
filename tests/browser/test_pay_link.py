"""A paper bill paid two ways: from its pay link through the sandbox bank, and by scanning its
printed QR in a (sandbox) banking app. Headless Chromium, the live server, a real worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from customers import paylinks
from customers.models import Bill
from payments import references
from payments.models import Payment
from payments.paper_bills import printed_bills
from sandbox import delivery
from tests.conftest import screenshot, wait_until
from tests.factories import customer_with_bills
from tests.sandbox.support import (
    bank_on_live_server,  # noqa: F401 - fixture
    bank_worker,  # noqa: F401 - fixture
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def _link(base: str, bill: Bill) -> str:
    return base + paylinks.pay_path(bill_id=bill.pk, due_date=bill.due_date)


def test_a_bill_paid_from_its_pay_link_through_the_bank(
    page,
    bank_worker,  # noqa: F811
    bank_on_live_server,  # noqa: F811
):
    customer, bills = customer_with_bills(amounts=[452_160, 310_000], name="Trần Thị Bình")
    bill = bills[0]
    page.goto(_link(bank_on_live_server.url, bill))
    expect(page.locator('[data-field="customer-name"]')).to_have_text("Trần Thị Bình")
    expect(page.locator('[data-field="reference"]')).to_have_text(
        references.bill_reference(bill.pk)
    )
    expect(page.locator("img.qr-code")).to_be_visible()
    screenshot(page, "pay-link-bill")
    page.locator('form[action="/pay/start/"] button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/sandbox/paymentv2/vpcpay\.html\?"))
    payment = Payment.objects.get(customer=customer, status=Payment.Status.PENDING)
    assert [line.bill_id for line in payment.lines.all()] == [bill.pk]  # that bill only
    page.get_by_role("radio", name="Gửi ngay").check()
    with bank_worker.paused():  # back on the page before a worker can settle the payment
        page.get_by_role("button", name="Chấp thuận thanh toán").click()
        page.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=ok$"))
    wait_until(lambda: delivery.deliver_due(), 20)
    page.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.PAID
    assert Bill.objects.get(pk=bills[1].pk).status == Bill.Status.UNPAID

    page.goto(_link(bank_on_live_server.url, bill))
    expect(page.locator('[data-field="bill-status"]')).to_contain_text("đã được thanh toán")
    expect(page.locator("img.qr-code")).to_have_count(0)


def test_a_printed_qr_scanned_in_a_banking_app_pays_its_bill(
    page,
    bank_worker,  # noqa: F811
    bank_on_live_server,  # noqa: F811
):
    _customer, bills = customer_with_bills(amounts=[389_500])
    bill = bills[0]
    printed = next(b for b in printed_bills(period=bill.period) if b.bill_number == bill.number)
    # The sandbox's banking app reads the printed payload: account, amount and note fill in.
    page.goto(f"{bank_on_live_server.url}/sandbox/qr/")
    page.locator("#payload").fill(printed.qr_payload)
    page.get_by_role("button", name=re.compile("transfer|chuyển", re.IGNORECASE)).click()
    wait_until(lambda: delivery.deliver_due(), 20)
    wait_until(lambda: Bill.objects.get(pk=bill.pk).status == Bill.Status.PAID, 30)
    standing = Payment.objects.get(reference=printed.reference)
    assert standing.status == Payment.Status.SUCCEEDED and standing.amount == bill.amount

    page.goto(printed.pay_url.replace(paylinks.settings.PORTAL_BASE_URL, bank_on_live_server.url))
    expect(page.locator('[data-field="bill-status"]')).to_be_visible()
