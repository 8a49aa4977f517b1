"""A household pays at a partner bank (the sandbox bank) and comes back to the portal.

Headless Chromium against the live server, which serves both the portal and the sandbox bank; a
real Celery worker applies the bank's notifications and asks the bank's query API.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from customers.models import Bill
from payments import services, tasks
from payments.models import InboundMessage, Payment
from sandbox import delivery
from sandbox.models import BankTransaction, Notification
from tests.conftest import axe_violations, screenshot, wait_until
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
Status = Payment.Status


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def _choose_the_sandbox_bank(page: Any, base_url: str, code: str, *, lang: str = "") -> Payment:
    """Look up the code, choose the sandbox bank, and arrive on the bank's payment page."""
    page.goto(base_url + "/" + (f"?lang={lang}" if lang else ""))
    page.locator("#code").fill(code)
    page.locator("#code").press("Enter")
    expect(page).to_have_url(re.compile(rf"/bills/{code}/$"))
    page.locator('input[name="method"][value="redirect:SANDBOX"]').check()
    page.locator('form[action="/pay/start/"] button[type="submit"]').click()
    page.wait_for_url(re.compile(r"/sandbox/paymentv2/vpcpay\.html\?"))
    return Payment.objects.get(customer__code=code, status=Status.PENDING)


def _bill_statuses(customer: Any) -> set[str]:
    return set(Bill.objects.filter(customer=customer).values_list("status", flat=True))


def test_approving_at_the_bank_brings_the_customer_back_to_a_paid_bill(
    page,
    bank_worker,  # noqa: F811
    bank_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(amounts=[452_160, 310_000])
    payment = _choose_the_sandbox_bank(page, bank_on_live_server.url, customer.code)

    # The bank shows who is paid, how much and for which order, in the customer's language.
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    expect(page.get_by_text("Công ty Điện lực Hà Tĩnh")).to_be_visible()
    expect(page.locator('[data-testid="amount"]')).to_have_text("762.160 ₫")
    expect(page.locator('[data-testid="reference"]')).to_have_text(payment.reference)
    assert axe_violations(page) == []
    screenshot(page, "sandbox-bank-phone")

    page.get_by_role("radio", name="Gửi ngay").check()
    # The worker held busy until the household is back on the page: otherwise the status query
    # the return asks for may settle the payment first, and the page would not wait for it.
    with bank_worker.paused():
        page.get_by_role("button", name="Chấp thuận thanh toán").click()
        page.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=ok$"))

    # The bank's server-to-server notification, sent by its courier.
    wait_until(lambda: delivery.deliver_due(), 20)
    ipn = Notification.objects.get(kind=Notification.Kind.IPN)
    assert ipn.state == Notification.State.DELIVERED
    page.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    expect(page.get_by_text(payment.reference).first).to_be_visible()

    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    assert _bill_statuses(customer) == {Bill.Status.PAID}
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    assert message.signature_valid and message.processed_at is not None

    page.goto(f"{bank_on_live_server.url}/bills/{customer.code}/")
    expect(page.locator('input[name="method"][value="redirect:SANDBOX"]')).to_have_count(0)


def test_declining_at_the_bank_shows_a_clear_failure_and_the_bill_stays_unpaid(
    page,
    bank_worker,  # noqa: F811
    bank_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = _choose_the_sandbox_bank(page, bank_on_live_server.url, customer.code, lang="en")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_label("Reason").select_option("51")
    with bank_worker.paused():  # what the bank said is shown before a worker confirms it
        page.get_by_role("button", name="Decline").click()
        page.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=declined&reason=51$"))
        # What the bank told the customer, at once; then the confirmed state.
        expect(
            page.get_by_role("alert").filter(has_text="the account balance is not enough")
        ).to_be_visible()
        # One message for the state: no spinner saying "waiting", no clock; another try offered.
        expect(page.get_by_text("Waiting for your payment")).to_have_count(0)
        expect(page.locator("[data-expires-at]")).to_have_count(0)
        expect(page.get_by_role("link", name="Try again at the bank")).to_be_visible()
        screenshot(page, "bank-return-declined")
    delivery.deliver_due()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.FAILED, 30)
    status = page.locator('#payment-status[data-status="failed"]')
    expect(status).to_be_visible(timeout=30_000)
    expect(status).to_contain_text("The bank did not complete the payment.")

    assert _bill_statuses(customer) == {Bill.Status.UNPAID}
    page.goto(f"{bank_on_live_server.url}/bills/{customer.code}/")
    expect(page.locator('input[name="method"][value="redirect:SANDBOX"]')).to_have_count(1)


def test_with_the_ipn_lost_and_the_customer_gone_the_poller_settles_the_payment(
    page,
    bank_worker,  # noqa: F811
    bank_on_live_server,  # noqa: F811
):
    customer, _bills = customer_with_bills(amounts=[452_160, 310_000])
    payment = _choose_the_sandbox_bank(page, bank_on_live_server.url, customer.code)

    # The bank records the decision, but the phone loses its connection before it follows the
    # bank's redirect back to the portal (route handlers never see redirects, so the decision
    # request itself is sent without following its redirect, then cut).
    def lose_the_way_back(route: Any) -> None:
        route.fetch(max_redirects=0)
        route.abort("internetdisconnected")

    page.route(re.compile(r"/sandbox/paymentv2/decide/"), lose_the_way_back)
    page.get_by_role("radio", name="Không bao giờ gửi (thông báo bị thất lạc)").check()
    page.get_by_role("button", name="Chấp thuận thanh toán").click()
    tx = wait_until(
        lambda: BankTransaction.objects.filter(
            txn_ref=payment.reference, state=BankTransaction.State.APPROVED
        ).first()
    )
    # ...and the bank's notification is lost too.
    assert delivery.deliver_due() == 0
    assert tx.notifications.get().state == Notification.State.DROPPED
    payment.refresh_from_db()
    assert payment.status == Status.PENDING

    # The beat scheduler's poller, when the payment's next check is due.
    services.payment_set_poll_schedule(payment_id=payment.pk, next_poll_at=timezone.now())
    tasks.poll_pending_gateway_payments.delay()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED, 30)
    assert _bill_statuses(customer) == {Bill.Status.PAID}
    assert not InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).exists()
    answer = InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY)
    assert answer.outcome == "succeeded:applied"

    # When the customer opens the payment again, it shows paid.
    page.goto(f"{bank_on_live_server.url}/pay/{payment.pk}/")
    page.wait_for_url(re.compile(rf"/(pay|receipts)/{payment.pk}/$"))
    expect(page.locator(f'a[href="/receipts/{payment.pk}/"]').first).to_be_visible()


def test_the_sandbox_banks_qr_page_on_a_phone(page, bank_on_live_server):  # noqa: F811
    page.goto(bank_on_live_server.url + "/sandbox/qr/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Thanh toán mã VietQR")
    assert axe_violations(page) == []
    screenshot(page, "sandbox-qr-phone")
