"""Hostile bank messages, one of each kind per channel, and the protocol answer each one gets.

The channel tests (under tests/payments/: channels/vnpay/test_ipn.py, test_transfer_callback.py,
test_matching.py, channels/collection/test_collection_auth.py, test_collection_api.py) cover each
rule in depth; this table puts the three channels side by side, adds the cases they leave out (a
replayed id with a tampered body, a replay after the payment was reversed or failed, a captured
request replayed under another partner's name), and ends with the integrity check.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from customers.models import Bill
from payments import applier, services
from payments.models import BankTransfer, InboundMessage, Payment, PaymentEvent
from tests.factories import customer_with_bills
from tests.payments.channels.collection.test_collection_support import (
    PAYMENTS,
    REVERSALS,
    SECRETS,
    notice,
    post,
    signed_headers,
    signed_post,
)
from tests.reliability import books, traffic
from tests.sandbox.support import bank_message, ipn_url, redirect_payment

pytestmark = pytest.mark.django_db
KEY = "protocol-codes-webhook-key"
Status = Payment.Status


@pytest.fixture(autouse=True)
def _partners_and_key(settings: Any) -> None:
    """The sandbox gateway as configured, plus two collection partners (VCB, MOMO)."""
    settings.TRANSFER_WEBHOOK_API_KEY = KEY
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        **{code: {"secret": secret} for code, secret in SECRETS.items()},
    }


def _snapshot(payment: Payment) -> tuple[Any, ...]:
    payment.refresh_from_db()
    return (
        payment.status,
        payment.needs_review,
        payment.needs_refund,
        PaymentEvent.objects.filter(payment=payment).count(),
        sorted(Bill.objects.filter(customer=payment.customer).values_list("status", flat=True)),
    )


def _work() -> None:
    """What the worker does with whatever the callbacks stored."""
    for message in InboundMessage.objects.filter(processed_at__isnull=True):
        applier.apply_one(message.pk)


def _ipn(client: Client, params: dict[str, str], partner: str = "SANDBOX") -> str:
    response = client.get(ipn_url(params, partner))
    assert response.status_code == 200
    return str(response.json()["RspCode"])


IPN_CASES = {
    "tampered amount": (lambda p: {**bank_message(p), "vnp_Amount": "100"}, "97"),
    "tampered reference": (lambda p: {**bank_message(p), "vnp_TxnRef": "EVNOTHER2222"}, "97"),
    "signed with another secret": (lambda p: bank_message(p, secret="not-the-bank"), "97"),
    "signature removed": (
        lambda p: {k: v for k, v in bank_message(p).items() if k != "vnp_SecureHash"},
        "97",
    ),
    "unknown reference": (lambda p: bank_message(p, vnp_TxnRef="EVNNOTOURS22"), "01"),
}


@pytest.mark.parametrize("case", IPN_CASES)
def test_a_hostile_ipn_gets_its_protocol_code_and_changes_nothing(client, case):
    payment = redirect_payment()
    forge, expected = IPN_CASES[case]
    before = _snapshot(payment)
    assert _ipn(client, forge(payment)) == expected
    _work()
    assert _snapshot(payment) == before
    # The genuine message afterwards is not poisoned by the hostile one.
    assert _ipn(client, bank_message(payment)) == "00"
    _work()
    assert _snapshot(payment)[0] == Status.SUCCEEDED
    books.check_books()


def test_an_ipn_for_another_terminal_gets_01_and_does_not_block_the_genuine_one(client):
    """Regression: the IPN dedupe key once left vnp_TmnCode out, so a signed message for another
    terminal, stored first as `wrong_terminal`, took the key of the genuine message and the
    genuine IPN was told 02 and never applied. The terminal is now part of the fingerprint."""
    payment = redirect_payment()
    before = _snapshot(payment)
    assert _ipn(client, bank_message(payment, tmn_code="OTHERTMN")) == "01"
    _work()
    assert _snapshot(payment) == before
    assert _ipn(client, bank_message(payment)) == "00"
    _work()
    assert _snapshot(payment)[0] == Status.SUCCEEDED
    books.check_books()


def test_a_signed_ipn_with_the_wrong_amount_gets_04_and_only_a_review_flag(client):
    payment = redirect_payment(amounts=[452_160])
    assert _ipn(client, bank_message(payment, amount_x100="45216100")) == "04"
    _work()
    status, needs_review, _refund, _events, bills = _snapshot(payment)
    assert status == Status.PENDING and needs_review and set(bills) == {Bill.Status.UNPAID}
    books.check_books()


def test_an_ipn_replayed_after_the_payment_failed_gets_02_and_is_only_recorded(client):
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment, response_code="24", status="02")) == "00"
    _work()
    before = _snapshot(payment)
    # The replay (a captured message, or the bank's late retry) stops the bank's retries...
    assert _ipn(client, bank_message(payment, transaction_no="99887766")) == "02"
    _work()
    status, review, _refund, events, bills = _snapshot(payment)
    # ...and never brings the payment back: the money it reports waits for an agent.
    assert (status, bills) == (before[0], before[4])
    assert review and events == before[3] + 1
    books.check_books()


def test_a_success_after_the_customer_cancelled_pays_the_bills_once(client):
    """Cancelled on our side while the household approved at the bank: the money moved, so it
    pays the bills (as after an expiry); its replay changes nothing more."""
    payment = redirect_payment()
    services.payment_cancel(payment_id=payment.pk, report=services.Report(source="api"))
    assert _ipn(client, bank_message(payment)) == "00"
    _work()
    status, review, refund, events, bills = _snapshot(payment)
    assert status == Status.SUCCEEDED and not review and not refund
    assert set(bills) == {Bill.Status.PAID}
    assert _ipn(client, bank_message(payment)) == "02"
    _work()
    assert _snapshot(payment)[3] == events
    books.check_books()


# --- Transfer notifications -------------------------------------------------------------------------
def _transfer(client: Client, body: Any, key: str = KEY) -> int:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/callbacks/transfers/",
        data=raw,
        content_type="application/json",
        headers={"Authorization": f"Apikey {key}"},
    ).status_code


def _vietqr(amount: int = 452_160) -> Payment:
    customer, _bills = customer_with_bills(amounts=[amount])
    return services.payment_start(customer_code=customer.code, method="vietqr").payment


def test_a_replayed_transfer_id_with_a_tampered_amount_is_answered_but_never_applied(client):
    payment = _vietqr()
    genuine = traffic.transfer_body(payment)
    assert _transfer(client, genuine) == 200
    _work()
    # The same id again with another amount and note: the sender's retry is acknowledged, and
    # only the first body (what the bank really sent) is kept.
    tampered = {**genuine, "transferAmount": 1, "content": "EVN refund please"}
    assert _transfer(client, tampered) == 200
    _work()
    message = InboundMessage.objects.get(kind="transfer")
    assert json.loads(message.body)["transferAmount"] == payment.amount
    assert BankTransfer.objects.get().status == BankTransfer.Status.MATCHED
    assert books.doubled() == 0
    books.check_books()


@pytest.mark.parametrize(
    ("case", "change", "expected"),
    [
        ("wrong key", {"key": "guess"}, (401, None)),
        ("wrong amount", {"transferAmount": 452_159}, (200, BankTransfer.Status.WRONG_AMOUNT)),
        ("unknown reference", {"content": "CK EVNZZZZZZZZZ"}, (200, BankTransfer.Status.UNMATCHED)),
        ("another account", {"accountNumber": "999999999"}, (200, BankTransfer.Status.UNMATCHED)),
        ("not json", {"raw": b"{'id': 1"}, (400, None)),
    ],
)
def test_a_hostile_transfer_notification_gets_its_answer_and_changes_no_payment(
    client, case, change, expected
):
    payment = _vietqr()
    before = _snapshot(payment)
    change = dict(change)
    key = change.pop("key", KEY)
    body = change.pop("raw", None) or traffic.transfer_body(payment, **change)
    assert _transfer(client, body, key=key) == expected[0]
    _work()
    assert _snapshot(payment) == before
    assert list(BankTransfer.objects.values_list("status", flat=True)) == (
        [expected[1]] if expected[1] else []
    )
    books.check_books()


def test_a_late_transfer_for_an_expired_payment_is_still_applied_once(client):
    payment = _vietqr()
    Payment.objects.filter(pk=payment.pk).update(
        status=Status.EXPIRED, expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    body = traffic.transfer_body(payment)
    assert _transfer(client, body) == 200 and _transfer(client, body) == 200
    _work()
    assert _snapshot(payment)[0] == Status.SUCCEEDED
    assert InboundMessage.objects.get(kind="transfer").outcome == "matched_late"
    books.check_books()


# --- Collection API ---------------------------------------------------------------------------------
def test_a_captured_collection_request_replayed_under_another_partner_is_refused(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = json.dumps(notice(customer, bills, "VCB-CAPTURED-1")).encode()
    headers = signed_headers(body, PAYMENTS, partner="VCB")
    assert post(client, PAYMENTS, body, {**headers, "X-Partner-Code": "MOMO"}).status_code == 401
    assert not Payment.objects.exists()
    assert post(client, PAYMENTS, body, headers).status_code == 201  # VCB's own still counts
    books.check_books()


def test_a_stale_collection_request_is_refused_and_a_fresh_replay_has_no_second_effect(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = notice(customer, bills, "VCB-STALE-1")
    stale = signed_post(client, PAYMENTS, body, timestamp=int(time.time()) - 301)
    assert stale.status_code == 401 and not Payment.objects.exists()
    first = signed_post(client, PAYMENTS, body)
    again = signed_post(client, PAYMENTS, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json() and Payment.objects.count() == 1
    wrong = signed_post(client, PAYMENTS, {**body, "transaction_id": "VCB-STALE-2", "amount": 1})
    # The bill is paid now, which is said before the wrong amount; nothing is recorded.
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (409, "bill_already_paid")
    assert Payment.objects.count() == 1
    reversal = signed_post(client, REVERSALS, {"transaction_id": "VCB-NOPE", "reason": "test"})
    assert reversal.status_code == 404
    books.check_books()
