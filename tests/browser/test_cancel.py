"""A household cancels a VietQR payment it had in fact already sent, in a real browser.

Cancelling takes two taps with a warning between them; the money that arrives after the cancel
(the bank's transfer notification → a real Celery worker) still pays the bill, and the bills page
says so. Coming back to the bills, the payment in progress is offered, and choosing another way
to pay its bills warns first.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from customers.models import Bill
from payments.models import BankTransfer, Payment
from tests.browser.test_vietqr_checkout import _notify, _start_vietqr_checkout
from tests.conftest import axe_violations, screenshot, wait_until
from tests.factories import customer_with_bills
from tests.sandbox.support import bank_on_live_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.celery_worker
def test_a_cancel_warns_first_and_money_sent_before_it_still_pays_the_bill(
    page, live_server, celery_worker
):
    customer, bills = customer_with_bills(unpaid=1, amounts=[452_160], name="Lê Thị Hoa")
    payment = _start_vietqr_checkout(page, live_server, customer)

    # One tap only opens the warning; nothing is cancelled yet.
    page.get_by_text("Hủy lần thanh toán này").click()
    warning = page.locator(".cancel-confirm")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Nếu bạn đã chuyển tiền hoặc đã thanh toán tại ngân hàng")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    assert axe_violations(page) == []
    screenshot(page, "checkout-cancel-warning")

    page.locator("[data-confirm-cancel]").click()
    page.wait_for_url(re.compile(rf"/bills/{customer.code}/$"))
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CANCELLED

    # The transfer the household had already sent arrives: it pays the bill all the same.
    response = _notify(live_server, payment)
    assert response.status_code == 200
    wait_until(lambda: Bill.objects.get(pk=bills[0].pk).status == Bill.Status.PAID, timeout=30)
    page.reload()
    expect(page.locator("main")).to_contain_text("Tất cả hóa đơn đã được thanh toán")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert BankTransfer.objects.get().status == BankTransfer.Status.MATCHED


def test_back_on_the_bills_page_a_payment_in_progress_is_continued_not_doubled(page, live_server):
    customer, _bills = customer_with_bills(unpaid=1, amounts=[389_500], name="Trần Văn Ba")
    payment = _start_vietqr_checkout(page, live_server, customer)

    # The household leaves the QR and looks its bills up again.
    page.goto(f"{live_server.url}/bills/{customer.code}/")
    banner = page.locator(".in-progress")
    expect(banner).to_contain_text("Bạn có một giao dịch đang chờ thanh toán")
    expect(banner).to_contain_text(payment.reference)
    assert axe_violations(page) == []
    screenshot(page, "bills-payment-in-progress")
    banner.get_by_role("link", name="Tiếp tục thanh toán").click()
    page.wait_for_url(re.compile(rf"/pay/{payment.pk}/$"))

    # Or cancels it from there, after the same warning, and the offer is gone.
    page.goto(f"{live_server.url}/bills/{customer.code}/")
    banner.get_by_text("Hủy lần thanh toán này").click()
    expect(banner.locator(".cancel-confirm")).to_contain_text("xin đừng hủy")
    banner.locator("[data-confirm-cancel]").click()
    page.wait_for_url(re.compile(rf"/bills/{customer.code}/$"))
    expect(page.locator(".in-progress")).to_have_count(0)
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.CANCELLED
    assert Payment.objects.filter(customer=customer).count() == 1


def test_choosing_another_way_for_bills_in_progress_warns_first(
    page,
    bank_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(unpaid=1, amounts=[389_500], name="Phạm Thị Cúc")
    payment = _start_vietqr_checkout(page, bank_on_live_server, customer)
    bills_url = f"{bank_on_live_server.url}/bills/{customer.code}/"

    # Back on the bills page the household chooses the bank's page instead: warned first.
    page.goto(bills_url)
    page.locator('input[name="method"][value="redirect:SANDBOX"]').check()
    page.locator('form[action="/pay/start/"] button[type="submit"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Các hóa đơn này đang có một giao dịch chờ thanh toán"
    )
    warning = page.locator(".in-progress")
    expect(warning).to_contain_text(payment.reference)
    expect(warning).to_contain_text("xin đừng thanh toán lại")
    assert axe_violations(page) == []
    screenshot(page, "pay-another-way-warning")
    assert Payment.objects.filter(customer=customer).count() == 1

    # Continue: back to the QR of the same payment.
    warning.get_by_role("link", name="Tiếp tục thanh toán").click()
    page.wait_for_url(re.compile(rf"/pay/{payment.pk}/$"))

    # Or go on anyway: the bank's page, with a second payment the household chose knowingly.
    page.goto(bills_url)
    page.locator('input[name="method"][value="redirect:SANDBOX"]').check()
    page.locator('form[action="/pay/start/"] button[type="submit"]').click()
    page.get_by_role("button", name=re.compile("Vẫn thanh toán qua")).click()
    page.wait_for_url(re.compile(r"/sandbox/paymentv2/vpcpay\.html\?"))
    assert Payment.objects.filter(customer=customer, status=Payment.Status.PENDING).count() == 2
