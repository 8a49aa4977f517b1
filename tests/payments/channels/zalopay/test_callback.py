"""POST /callbacks/zalopay/callback/: checks in order, stored once, answered in ZaloPay's codes
(1 success, 2 already processed, -1 bad MAC, 0 try again), applied by the one settle path.

The cases of the VNPay suite (tests/payments/channels/vnpay/test_ipn.py), for ZaloPay.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.db import connection

from customers.models import Bill
from payments import applier, services
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.sandbox.wallets import (
    ZALOPAY_CALLBACK_PATH,
    wallet_payment,
    wallets,  # noqa: F401 - fixture
    zalopay_callback,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wallets")]
Status = Payment.Status
SUCCESS = {"return_code": 1, "return_message": "success"}
ALREADY = {"return_code": 2, "return_message": "already processed"}
BAD_MAC = {"return_code": -1, "return_message": "mac not equal"}


def _post(client, body, **extra):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(ZALOPAY_CALLBACK_PATH, raw, content_type="application/json", **extra)


def _callback(client, body, **extra) -> dict:
    response = _post(client, body, **extra)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def _apply_stored(payment):
    for message in InboundMessage.objects.filter(
        payment=payment, processed_at__isnull=True
    ).order_by("pk"):
        applier.apply_one(message.pk)


def test_a_genuine_callback_is_stored_answered_1_and_applied_by_the_worker(client):
    payment = wallet_payment("ZALOPAY", amounts=[452_160, 310_000])
    assert _callback(client, zalopay_callback(payment)) == SUCCESS
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    assert message.signature_valid is True and message.payment == payment
    assert message.processed_at is None and message.response_body == SUCCESS
    payment.refresh_from_db()
    assert payment.status == Status.PENDING

    _apply_stored(payment)
    payment.refresh_from_db()
    message.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == "260201000000389"
    assert message.outcome == "succeeded:applied"
    assert set(payment.customer.bills.values_list("status", flat=True)) == {Bill.Status.PAID}
    event = payment.events.get(to_status=Status.SUCCEEDED)
    assert event.source == PaymentEvent.Source.IPN and event.message == message
    assert payment.succeeded_at == datetime.datetime(2026, 2, 1, 20, 15, tzinfo=datetime.UTC)


def test_a_repeat_is_answered_2_and_applied_once(client):
    payment = wallet_payment("ZALOPAY")
    body = zalopay_callback(payment)
    assert _callback(client, body) == SUCCESS
    assert _callback(client, body) == ALREADY
    _apply_stored(payment)
    assert _callback(client, body) == ALREADY
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).count() == 1
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


def test_a_tampered_callback_is_answered_minus_1_and_kept_as_already_processed(client):
    payment = wallet_payment("ZALOPAY")
    genuine = zalopay_callback(payment)
    forged = {
        **genuine,
        "data": genuine["data"].replace(f'"amount":{payment.amount}', '"amount":1'),
    }
    assert _callback(client, forged) == BAD_MAC
    message = InboundMessage.objects.get()
    assert message.signature_valid is False and message.outcome == "invalid_signature"
    assert message.processed_at is not None and message.payment is None
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


def test_a_forged_callback_never_poisons_the_genuine_one(client):
    payment = wallet_payment("ZALOPAY")
    genuine = zalopay_callback(payment)
    # The genuine MAC replayed over another transaction: refused, and the real one still counts.
    forged = {**genuine, "data": genuine["data"].replace("260201000000389", "260201000000390")}
    assert _callback(client, forged) == BAD_MAC
    assert _callback(client, forged) == BAD_MAC
    assert _callback(client, genuine) == SUCCESS
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == "260201000000389"


def test_a_callback_made_with_key1_or_another_key_is_refused(client):
    payment = wallet_payment("ZALOPAY")
    assert _callback(client, zalopay_callback(payment, key2="test-zalopay-key1-5c0d8e2f4a6b")) == (
        BAD_MAC
    )
    assert _callback(client, {**zalopay_callback(payment), "mac": ""}) == BAD_MAC
    assert InboundMessage.objects.filter(signature_valid=False).count() == 2


def test_another_app_or_an_unknown_order_is_kept_and_answered_received(client):
    payment = wallet_payment("ZALOPAY")
    answer = _callback(client, zalopay_callback(payment, app_id="9999"))
    assert answer["return_code"] == 1 and "not found" in answer["return_message"]
    unknown = _callback(client, zalopay_callback(payment, app_trans_id="260201_EVNNOTOURS22"))
    assert unknown["return_code"] == 1
    assert sorted(InboundMessage.objects.values_list("outcome", flat=True)) == [
        "order_not_found",
        "wrong_terminal",
    ]
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


def test_an_agreement_callback_is_kept_for_the_record(client):
    payment = wallet_payment("ZALOPAY")
    assert _callback(client, zalopay_callback(payment, type_=2))["return_code"] == 1
    assert InboundMessage.objects.get().outcome == "no_handler"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


@pytest.mark.parametrize("amount", [452_161, 45_216_000, 0])
def test_a_wrong_amount_is_kept_for_an_agent_and_never_applied(client, amount):
    payment = wallet_payment("ZALOPAY", amounts=[452_160])
    answer = _callback(client, zalopay_callback(payment, amount=amount))
    assert answer == {"return_code": 1, "return_message": "invalid amount: kept for review"}
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.needs_review
    assert f"reported {amount} VND for a payment of 452160 VND" in payment.review_reason
    assert InboundMessage.objects.get().outcome == "amount_mismatch"


def test_the_checks_run_in_order(client):
    payment = wallet_payment("ZALOPAY")
    wrong = zalopay_callback(payment, app_id="9999", amount=1)
    assert _callback(client, {**wrong, "mac": "0" * 64}) == BAD_MAC
    assert "not found" in _callback(client, wrong)["return_message"]  # app before amount
    services.payment_mark_failed(payment_id=payment.pk, report=services.Report(source="api"))
    assert (
        "invalid amount" in _callback(client, zalopay_callback(payment, amount=1))["return_message"]
    )


def test_a_payment_already_final_is_answered_2(client):
    payment = wallet_payment("ZALOPAY")
    services.payment_mark_succeeded(
        payment_id=payment.pk, report=services.Report(source=services.Source.QUERY)
    )
    assert _callback(client, zalopay_callback(payment)) == ALREADY
    _apply_stored(payment)
    assert InboundMessage.objects.get().outcome == "succeeded:already_done"


def test_out_of_order_a_callback_after_a_failure_is_kept_for_an_agent(client):
    payment = wallet_payment("ZALOPAY")
    services.payment_mark_failed(payment_id=payment.pk, report=services.Report(source="query"))
    assert _callback(client, zalopay_callback(payment)) == ALREADY
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.needs_review
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()


def test_an_expired_or_cancelled_payment_still_takes_zalopays_money(client):
    expired, cancelled = wallet_payment("ZALOPAY"), wallet_payment("ZALOPAY")
    services.payment_expire(
        payment_id=expired.pk, now=expired.expires_at + datetime.timedelta(seconds=1)
    )
    services.payment_cancel(payment_id=cancelled.pk, report=services.Report(source="api"))
    for index, (payment, before) in enumerate(
        ((expired, Status.EXPIRED), (cancelled, Status.CANCELLED))
    ):
        body = zalopay_callback(payment, zp_trans_id=260_201_000_000_500 + index)
        assert _callback(client, body) == SUCCESS
        _apply_stored(payment)
        payment.refresh_from_db()
        assert payment.status == Status.SUCCEEDED
        assert payment.events.get(to_status=Status.SUCCEEDED).from_status == before


def test_only_post_is_accepted_with_the_contracts_error_shape(client):
    response = client.get(ZALOPAY_CALLBACK_PATH)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[]",
        '{"data": {"app_id": 2553}, "mac": "x", "type": 1}',
        '{"data": "not json", "mac": "x", "type": 1}',
        '{"data": "[1]", "mac": "x", "type": 1}',
        '{"mac": "x"}',
        b"\xff",
    ],
)
def test_a_body_that_is_not_zalopays_shape_gets_a_clear_400(client, body):
    response = _post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not InboundMessage.objects.exists()


def test_an_address_outside_the_partners_list_is_told_to_retry(client, settings):
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "ZALOPAY": {**settings.PARTNER_CREDENTIALS["ZALOPAY"], "allowed_ips": "198.51.100.0/24"},
    }
    payment = wallet_payment("ZALOPAY")
    assert _callback(client, zalopay_callback(payment)) == {
        "return_code": 0,
        "return_message": "try again",
    }
    assert InboundMessage.objects.get().outcome == "address_not_allowed"
    assert _callback(client, zalopay_callback(payment), REMOTE_ADDR="198.51.100.9") == SUCCESS


@pytest.mark.django_db(transaction=True)
def test_it_answers_0_when_the_database_is_unavailable(client):
    payment = wallet_payment("ZALOPAY")
    body = zalopay_callback(payment)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1
    try:
        response = _post(client, body)
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()
    assert response.json() == {"return_code": 0, "return_message": "try again"}
    assert _callback(client, body) == SUCCESS


def test_a_genuine_callback_costs_the_web_two_queries(client, django_assert_num_queries):
    payment = wallet_payment("ZALOPAY")
    body = zalopay_callback(payment)
    with django_assert_num_queries(2):
        assert _callback(client, body) == SUCCESS
