"""When a double payment still happens, the household sees plainly that the second amount goes
back, how and when: never a green "thank you" for money that paid nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from payments import services
from tests.conftest import axe_violations, screenshot
from tests.factories import customer_with_bills

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_second_of_two_payments_for_the_same_bills_says_it_goes_back(page, live_server):
    customer, _ = customer_with_bills(unpaid=1, amounts=[1_383_622], name="Phạm Thị Bốn")
    first = services.payment_start(customer_code=customer.code, method="vietqr").payment
    second = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    for payment in (first, second):
        services.payment_mark_succeeded(
            payment_id=payment.id, report=services.Report(source=services.Source.IPN)
        )

    page.goto(f"{live_server.url}/receipts/{second.pk}/")
    notice = page.locator(".receipt .alert").first
    expect(notice).to_contain_text("Các hóa đơn này đã được thanh toán trước đó")
    expect(notice).to_contain_text("1.383.622 ₫ sẽ được hoàn về tài khoản đã chuyển")
    expect(page.locator(".alert-ok")).to_have_count(0)
    # It fits a 390 px phone: nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert axe_violations(page) == []
    screenshot(page, "receipt-paid-twice")

    page.goto(f"{live_server.url}/receipts/{first.pk}/")
    expect(page.locator(".alert-ok")).to_contain_text("Đã nhận được thanh toán")
    expect(page.locator(".in-words")).to_have_text(
        "Một triệu ba trăm tám mươi ba nghìn sáu trăm hai mươi hai đồng"
    )
    # Printed (or saved as PDF from the print dialog): the receipt alone.
    expect(page.get_by_role("button", name="In hoặc lưu thành PDF")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.site-header")).to_be_hidden()
    expect(page.locator(".receipt-actions")).to_be_hidden()
    expect(page.locator(".receipt")).to_be_visible()
