"""python manage.py simulate_transfer: a bank's notification, sent over HTTP to a running portal."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from payments import applier, matching, services
from payments.models import InboundMessage, Payment
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "test-transfer-key"


@pytest.fixture(autouse=True)
def _key(settings):
    settings.TRANSFER_WEBHOOK_API_KEY = KEY


def _simulate(live_server, *args: str) -> str:
    out = io.StringIO()
    call_command(
        "simulate_transfer",
        *args,
        "--url",
        f"{live_server.url}/callbacks/transfers/",
        "--key",
        KEY,
        stdout=out,
    )
    return out.getvalue()


def test_it_announces_a_transfer_that_settles_the_payment(live_server):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    output = _simulate(live_server, payment.reference.lower())
    assert '-> 200 {"success": true}' in output
    message = InboundMessage.objects.get()
    body = json.loads(message.body)
    assert body["transferAmount"] == payment.amount and body["transferType"] == "in"
    # The note wraps the reference in a bank's own text, as real ones do.
    assert body["content"] != payment.reference and payment.reference in body["content"]
    assert applier.apply_one(message.pk) == matching.MATCHED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_it_can_send_a_wrong_amount_for_a_demo_of_what_agents_see(live_server):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    _simulate(live_server, str(payment.pk), "--amount", "1000")
    message = InboundMessage.objects.get()
    assert applier.apply_one(message.pk) == matching.WRONG_AMOUNT


def test_an_unknown_reference_needs_an_amount(live_server):
    with pytest.raises(CommandError, match="--amount"):
        _simulate(live_server, "EVNNOTAPAYMT")
    assert InboundMessage.objects.count() == 0


def test_a_refusal_from_the_portal_fails_the_command(live_server):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    out = io.StringIO()
    with pytest.raises(CommandError, match="401"):
        call_command(
            "simulate_transfer",
            payment.reference,
            "--url",
            f"{live_server.url}/callbacks/transfers/",
            "--key",
            "wrong",
            stdout=out,
        )
    assert InboundMessage.objects.count() == 0
