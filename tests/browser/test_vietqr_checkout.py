"""A household pays a bill by VietQR in a real browser, and the page turns into the receipt.

Bills page → VietQR → checkout with the QR and the copy-able details → the bank's transfer
notification reaches /callbacks/transfers/ → a real Celery worker matches it → the page, polling
by itself, opens the receipt.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from django.conf import settings
from playwright.sync_api import expect

from payments.models import BankTransfer, Payment
from tests.conftest import DESKTOP, axe_violations, screenshot
from tests.factories import customer_with_bills, transfer_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The worker process reads the environment's settings, and so does this test's web side.
KEY = settings.TRANSFER_WEBHOOK_API_KEY


def _start_vietqr_checkout(page, live_server, customer) -> Payment:
    page.goto(f"{live_server.url}/bills/{customer.code}/")
    page.check("input[name=method][value=vietqr]")
    page.locator("form[action$='/pay/start/'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/pay/[0-9a-f-]{36}/$"))
    return Payment.objects.get(customer=customer)


def _notify(live_server, payment: Payment) -> requests.Response:
    body = transfer_body(
        payment,
        sender_id=4_200_001,
        # The bank's own prefix and suffix around a lower-cased reference.
        content=f"MBVCB.3278907687.{payment.reference.lower()}.CT tu 0912345678 NGUYEN VAN AN",
        accumulated=19_077_000,
        referenceCode="FT26331000042",
    )
    return requests.post(
        f"{live_server.url}/callbacks/transfers/",
        data=json.dumps(body),
        headers={"Authorization": f"Apikey {KEY}", "Content-Type": "application/json"},
        timeout=10,
    )


@pytest.mark.celery_worker
def test_a_household_pays_a_bill_by_vietqr_and_sees_the_receipt(
    page, browser, live_server, celery_worker
):
    customer, bills = customer_with_bills(
        unpaid=2, amounts=[452_160, 389_500], name="Nguyễn Văn An"
    )
    payment = _start_vietqr_checkout(page, live_server, customer)
    assert payment.method == Payment.Method.VIETQR and payment.amount == 841_660

    # The QR is loaded and large enough for another phone's camera on a 390 px screen.
    qr = page.locator("img.qr-code")
    assert qr.is_visible()
    assert page.evaluate("document.querySelector('img.qr-code').naturalWidth") > 0
    assert qr.bounding_box()["width"] >= 280

    # For a customer paying on this very phone: every detail as text, with copy buttons.
    details = page.locator(".transfer-details")
    for text in (
        "Vietcombank",
        settings.VIETQR_ACCOUNT,
        "CONG TY DIEN LUC HA TINH",
        "841.660 ₫",
        payment.reference,
    ):
        assert text in details.inner_text()
    buttons = page.locator("button[data-copy]")
    assert buttons.count() == 4
    assert all(buttons.nth(i).is_visible() for i in range(4))

    # The countdown runs, and the page is accessible (WCAG 2.1 AA).
    assert re.search(r"\d\d:\d\d", page.locator("[data-countdown]").inner_text())
    assert axe_violations(page) == []
    screenshot(page, "checkout-vietqr-phone")

    desktop = browser.new_context(viewport=DESKTOP, locale="vi-VN")
    try:
        wide = desktop.new_page()
        wide.goto(page.url)
        wide.locator("img.qr-code").wait_for()
        wide.wait_for_function("document.querySelector('img.qr-code').naturalWidth > 0")
        assert axe_violations(wide) == []
        screenshot(wide, "checkout-vietqr-desktop")
    finally:
        desktop.close()

    # Copying the transfer note puts exactly the reference on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    note_button = page.locator(f"button[data-copy='{payment.reference}']")
    note_button.click()
    copied = page.locator("[data-copy-status]").get_attribute("data-copied-label")
    assert copied
    # The label changes once the (asynchronous) clipboard write is done: waited for, not raced.
    expect(note_button.locator(".copy-label")).to_have_text(copied)
    assert page.evaluate("navigator.clipboard.readText()") == payment.reference
    expect(page.locator("[data-copy-status]")).to_contain_text(payment.reference)

    # The bank's notification arrives; the worker settles; the page opens the receipt itself.
    response = _notify(live_server, payment)
    assert response.status_code == 200 and response.json() == {"success": True}
    page.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    assert payment.reference in page.locator("main").inner_text()
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert BankTransfer.objects.get().status == BankTransfer.Status.MATCHED
    for bill in bills:
        bill.refresh_from_db()
        assert bill.paid_by_id == payment.pk


def test_the_english_checkout_is_accessible_too(page, live_server):
    customer, _ = customer_with_bills(unpaid=1)
    page.goto(f"{live_server.url}/?lang=en")
    payment = _start_vietqr_checkout(page, live_server, customer)
    assert "Scan to pay with any banking app" in page.locator("main").inner_text()
    assert page.locator("html").get_attribute("lang") == "en"
    assert axe_violations(page) == []
    assert payment.status == Payment.Status.PENDING
