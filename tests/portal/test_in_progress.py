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
