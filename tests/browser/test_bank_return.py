"""Back from the bank before the bank has confirmed: the page says one thing, and offers only
what makes sense (no "waiting for you to pay", no countdown, no "continue to the bank").

No Celery worker runs here, so the payment is still pending when the household lands: exactly
the moment the page used to contradict itself.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from payments.models import Payment
from tests.browser.test_redirect_payment import _choose_the_sandbox_bank
from tests.conftest import axe_violations, purge_broker, screenshot
from tests.factories import customer_with_bills
from tests.sandbox.support import bank_on_live_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def test_back_from_an_approval_the_page_says_the_bank_is_being_asked_and_nothing_else(
    page,
    bank_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = _choose_the_sandbox_bank(page, bank_on_live_server.url, customer.code)
    page.get_by_role("radio", name="Không bao giờ gửi (thông báo bị thất lạc)").check()
    page.get_by_role("button", name="Chấp thuận thanh toán").click()
    page.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=ok$"))
    try:
        status = page.locator("#payment-status")
        expect(status).to_contain_text("Ngân hàng báo giao dịch đã thành công")
        expect(status).to_contain_text("Xin đừng thanh toán lại")
        assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
        for contradiction in ("Đang chờ bạn thanh toán", "Tiếp tục đến ngân hàng"):
            expect(page.get_by_text(contradiction)).to_have_count(0)
        expect(page.locator("[data-expires-at]")).to_have_count(0)
        expect(page.locator(".cancel-form")).to_have_count(0)
        assert axe_violations(page) == []
        screenshot(page, "bank-return-confirming")
    finally:
        purge_broker()  # the status check the return asked for: no worker here to run it
