"""A household pays with a wallet: MoMo's app on a phone, ZaloPay's web page on a computer.

Headless Chromium against the live server, which serves the portal and the sandbox's wallets; a
real Celery worker applies the wallets' notifications and asks their status queries.
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
from sandbox.models import Notification, WalletOrder
from tests.conftest import DESKTOP, PHONE, axe_violations, screenshot, wait_until
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    wallet_worker,  # noqa: F401 - fixture
    wallets_on_live_server,  # noqa: F401 - fixture
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]
Status = Payment.Status
PHONE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; SM-A155F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36"
)


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    settings.LOOKUP_RATE_LIMIT = "1000/m"


@pytest.fixture
def phone(browser: Any, live_server: Any) -> Any:
    """A phone that says so (its browser's User-Agent), in Vietnamese."""
    context = browser.new_context(
        viewport=PHONE, locale="vi-VN", user_agent=PHONE_AGENT, is_mobile=True, has_touch=True
    )
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def computer(browser: Any, live_server: Any) -> Any:
    context = browser.new_context(viewport=DESKTOP, locale="vi-VN")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def _choose(tab: Any, base_url: str, code: str, partner: str, *, lang: str = "") -> Payment:
    """Look up the code, choose the wallet, and arrive on the portal's checkout page."""
    tab.goto(base_url + "/" + (f"?lang={lang}" if lang else ""))
    tab.locator("#code").fill(code)
    tab.locator("#code").press("Enter")
    expect(tab).to_have_url(re.compile(rf"/bills/{code}/$"))
    tab.locator(f'input[name="method"][value="redirect:{partner}"]').check()
    tab.locator('form[action="/pay/start/"] button[type="submit"]').click()
    payment = wait_until(
        lambda: Payment.objects.filter(customer__code=code, status=Status.PENDING).first()
    )
    tab.wait_for_url(re.compile(rf"/pay/{payment.pk}/$"))
    return payment


def _bill_statuses(customer: Any) -> set[str]:
    return set(Bill.objects.filter(customer=customer).values_list("status", flat=True))


def test_on_a_phone_the_household_pays_in_the_momo_app_and_gets_the_receipt(
    phone,
    wallet_worker,  # noqa: F811
    wallets_on_live_server,  # noqa: F811
):
    base = wallets_on_live_server.url
    customer, _bills = customer_with_bills(amounts=[452_160, 310_000])
    payment = _choose(phone, base, customer.code, "MOMO")

    # The checkout offers MoMo's app first, its web page besides.
    open_app = phone.get_by_role("link", name="Mở trong Ví MoMo")
    expect(open_app).to_be_visible()
    expect(phone.get_by_role("link", name="Thanh toán trên trang web của Ví MoMo")).to_be_visible()
    assert axe_violations(phone) == []
    screenshot(phone, "checkout-momo-phone")

    open_app.click()
    phone.wait_for_url(re.compile(r"/sandbox/momo/app/"))
    expect(phone.locator('[data-testid="amount"]')).to_have_text("762.160 ₫")
    expect(phone.locator('[data-testid="reference"]')).to_have_text(payment.reference)
    assert axe_violations(phone) == []
    screenshot(phone, "sandbox-momo-app-phone")
    phone.get_by_role("radio", name="Gửi ngay").check()
    # Back from the app the page says what MoMo said, before a worker has confirmed it (held
    # busy here: otherwise the status query the return asks for may win the race to the page).
    with wallet_worker.paused():
        phone.get_by_role("button", name="Chấp thuận thanh toán").click()
        phone.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=ok$"))
        expect(phone.get_by_text("Ví MoMo báo đã thanh toán", exact=False)).to_be_visible()

    # MoMo's server-to-server notification, sent by the sandbox's courier.
    wait_until(lambda: delivery.deliver_due(), 20)
    ipn = Notification.objects.get(kind=Notification.Kind.MOMO_IPN)
    assert ipn.state == Notification.State.DELIVERED and ipn.last_status == 204
    phone.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    expect(phone.get_by_text(payment.reference).first).to_be_visible()

    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and _bill_statuses(customer) == {Bill.Status.PAID}
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1
    assert WalletOrder.objects.get().order_id == payment.reference


def test_on_a_computer_the_household_pays_on_zalopays_web_page(
    computer,
    wallet_worker,  # noqa: F811
    wallets_on_live_server,  # noqa: F811
):
    base = wallets_on_live_server.url
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = _choose(computer, base, customer.code, "ZALOPAY", lang="en")

    # No app to open on a computer: ZaloPay's web page, with a QR for the app.
    expect(computer.get_by_role("link", name="Open in ZaloPay")).to_have_count(0)
    web = computer.get_by_role("link", name="Pay on ZaloPay's web page")
    expect(web).to_be_visible()
    assert axe_violations(computer) == []
    web.click()
    computer.wait_for_url(re.compile(r"/sandbox/zalopay/openinapp\?order="))
    expect(computer.locator('[data-testid="amount"]')).to_have_text("452.160 ₫")
    assert axe_violations(computer) == []
    computer.get_by_role("radio", name="Never send it (a lost notification)").check()
    with wallet_worker.paused():  # as with MoMo: the page speaks before the worker confirms
        computer.get_by_role("button", name="Approve payment").click()
        computer.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=ok$"))
        expect(
            computer.get_by_text("ZaloPay says the payment went through.", exact=False)
        ).to_be_visible()

    # The callback is lost: the status query the return asked for settles the payment.
    assert delivery.deliver_due() == 0
    computer.wait_for_url(re.compile(rf"/receipts/{payment.pk}/$"), timeout=30_000)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and _bill_statuses(customer) == {Bill.Status.PAID}
    assert InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY).outcome == (
        "succeeded:applied"
    )


def test_declining_in_momo_says_why_and_the_bill_stays_unpaid(
    phone,
    wallet_worker,  # noqa: F811
    wallets_on_live_server,  # noqa: F811
):
    base = wallets_on_live_server.url
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = _choose(phone, base, customer.code, "MOMO", lang="en")
    phone.get_by_role("link", name="Pay on Ví MoMo's web page").click()
    phone.wait_for_url(re.compile(r"/sandbox/momo/pay/"))
    phone.get_by_label("Reason").select_option("1001")
    with wallet_worker.paused():  # the page speaks before the worker confirms
        phone.get_by_role("button", name="Decline").click()
        phone.wait_for_url(re.compile(rf"/pay/{payment.pk}/\?bank=declined&reason=1001$"))
        expect(
            phone.get_by_role("alert").filter(has_text="the wallet balance is not enough")
        ).to_be_visible()
    delivery.deliver_due()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.FAILED, 30)
    assert _bill_statuses(customer) == {Bill.Status.UNPAID}


def test_with_the_notification_lost_and_the_household_gone_the_poller_settles_momo(
    phone,
    wallet_worker,  # noqa: F811
    wallets_on_live_server,  # noqa: F811
):
    base = wallets_on_live_server.url
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = _choose(phone, base, customer.code, "MOMO")
    phone.get_by_role("link", name="Mở trong Ví MoMo").click()
    phone.wait_for_url(re.compile(r"/sandbox/momo/app/"))
    phone.route(re.compile(r"/pay/return/MOMO/"), lambda route: route.abort("internetdisconnected"))
    phone.get_by_role("radio", name="Không bao giờ gửi (thông báo bị thất lạc)").check()
    phone.get_by_role("button", name="Chấp thuận thanh toán").click()
    wait_until(lambda: WalletOrder.objects.filter(state="approved").exists())
    assert delivery.deliver_due() == 0

    services.payment_set_poll_schedule(payment_id=payment.pk, next_poll_at=timezone.now())
    tasks.poll_pending_gateway_payments.delay()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED, 30)
    assert _bill_statuses(customer) == {Bill.Status.PAID}
    assert not InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).exists()
