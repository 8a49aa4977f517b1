"""Coming back to the bills page with a payment in progress: continue it, or cancel it first.

A household that left the QR or the bank's page and looks its bills up again used to see no sign
of the payment and start a second one; both could go through.
"""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from payments.models import Payment
from tests import factories

pytestmark = pytest.mark.django_db

BANNER = "Bạn có một giao dịch đang chờ thanh toán"


def _start(client: Client, code: str) -> Payment:
    response = client.post("/pay/start/", {"customer_code": code, "method": "vietqr"})
    assert response.status_code == 302
    return Payment.objects.get(customer__code=code, status=Payment.Status.PENDING)


def test_the_browser_that_started_a_payment_is_offered_to_continue_or_cancel_it(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)
    page = client.get(f"/bills/{customer.code}/").content.decode()
    assert BANNER in page and payment.reference in page
    assert f'href="/pay/{payment.pk}/"' in page
    assert f'action="/pay/{payment.pk}/cancel/"' in page
    assert "hãy hủy giao dịch này trước" in page  # another way to pay: cancel this one first
    # Starting again the same way continues the same payment.
    _start(client, customer.code)
    assert Payment.objects.filter(customer=customer).count() == 1


def test_nobody_else_looking_up_the_code_is_told(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    _start(client, customer.code)
    assert BANNER not in Client().get(f"/bills/{customer.code}/").content.decode()


def test_once_cancelled_paid_or_expired_the_payment_is_no_longer_offered(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)
    client.post(f"/pay/{payment.pk}/cancel/")
    assert BANNER not in client.get(f"/bills/{customer.code}/").content.decode()
    other, _ = factories.customer_with_bills(unpaid=1)
    late = _start(client, other.code)
    Payment.objects.filter(pk=late.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert BANNER not in client.get(f"/bills/{other.code}/").content.decode()


def test_a_tampered_cookie_is_ignored(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)
    client.cookies["open_payment"] = f"{customer.code}:{payment.pk}"  # unsigned
    assert BANNER not in client.get(f"/bills/{customer.code}/").content.decode()


# --- Another way to pay bills a payment in progress holds ---------------------------------------
WARNING = "Các hóa đơn này đang có một giao dịch chờ thanh toán"


def _by_bank(client: Client, code: str, **extra: str):
    return client.post(
        "/pay/start/", {"customer_code": code, "method": "redirect:SANDBOX", **extra}
    )


def test_choosing_another_way_for_bills_in_progress_warns_first(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)

    warned = _by_bank(client, customer.code)
    assert warned.status_code == 200
    page = warned.content.decode()
    assert WARNING in page and payment.reference in page
    assert "xin đừng thanh toán lại" in page
    assert f'href="/pay/{payment.pk}/"' in page  # continue it
    assert f'action="/pay/{payment.pk}/cancel/"' in page  # or cancel it, after the warning
    assert 'name="anyway" value="1"' in page and "Vẫn thanh toán qua" in page
    assert Payment.objects.filter(customer=customer).count() == 1

    # Going on anyway starts the other payment, at the bank.
    went_on = _by_bank(client, customer.code, anyway="1")
    assert went_on.status_code == 302 and "/sandbox/" in went_on["Location"]
    assert Payment.objects.filter(customer=customer, status="pending").count() == 2


def test_someone_else_is_warned_without_the_payment_itself(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)
    page = _by_bank(Client(), customer.code).content.decode()
    assert WARNING in page and "thiết bị khác" in page
    assert payment.reference not in page and str(payment.pk) not in page


def test_no_warning_once_it_is_cancelled_nor_for_the_same_way_again(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    payment = _start(client, customer.code)
    assert _start(client, customer.code) == payment  # the same way: handed back, no warning
    client.post(f"/pay/{payment.pk}/cancel/")
    assert _by_bank(client, customer.code).status_code == 302


def test_the_warning_speaks_english_second(client):
    customer, _ = factories.customer_with_bills(unpaid=1)
    _start(client, customer.code)
    client.get("/?lang=en")
    page = _by_bank(client, customer.code).content.decode()
    assert "A payment is in progress for these bills" in page
    assert "Pay through" in page and "anyway" in page
