"""Money that arrives short is shown to the household, with a QR for the rest; the rest makes
the payment whole. Headless Chromium, a real Celery worker applying the bank's notifications."""

from __future__ import annotations

import json
import re

import pytest
import requests
from django.conf import settings
from playwright.sync_api import expect

from customers.models import Bill
from payments.models import BankTransfer, Payment
from tests.browser.test_vietqr_checkout import _start_vietqr_checkout
from tests.conftest import axe_violations, screenshot
from tests.factories import customer_with_bills, transfer_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _transfer(live_server, payment: Payment, amount: int, sender_id: int) -> None:
    body = transfer_body(
        payment, sender_id=sender_id, referenceCode=f"FT{sender_id}", transferAmount=amount
    )
    response = requests.post(
        f"{live_server.url}/callbacks/transfers/",
        data=json.dumps(body),
        headers={
            "Authorization": f"Apikey {settings.TRANSFER_WEBHOOK_API_KEY}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.celery_worker
def test_a_short_transfer_is_shown_with_a_qr_for_the_rest_which_settles_the_bill(
    page, live_server, celery_worker
):
    customer, bills = customer_with_bills(unpaid=1, amounts=[1_383_622], name="Võ Văn Năm")
    payment = _start_vietqr_checkout(page, live_server, customer)

    _transfer(live_server, payment, 100_000, 4_300_001)
    # The page notices by itself: what arrived, what is missing, and a QR for exactly that.
    short = page.locator("[data-short]")
    expect(short).to_contain_text("Chúng tôi đã nhận 100.000 ₫", timeout=30_000)
    expect(short).to_contain_text("còn thiếu 1.283.622 ₫")
    expect(page.locator(".qr-amount")).to_have_text("1.283.622 ₫")
    assert "amount=1283622" in page.locator("img.qr-code").get_attribute("src")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    # The bills table keeps within its card on a 390 px phone.
    fits = page.evaluate(
        "(() => { const t = document.querySelector('.summary table');"
        " return t.getBoundingClientRect().right <= t.closest('.card').getBoundingClientRect().right; })()"
    )
    assert fits
    assert axe_violations(page) == []
    screenshot(page, "checkout-vietqr-short")

    _transfer(live_server, payment, 1_283_622, 4_300_002)
    page.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk
    assert set(BankTransfer.objects.values_list("status", flat=True)) == {
        BankTransfer.Status.MATCHED
    }
