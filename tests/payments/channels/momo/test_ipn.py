"""POST /callbacks/momo/ipn/: verified, stored once, answered 204, applied by the one settle path.

The cases of the VNPay suite (tests/payments/channels/vnpay/test_ipn.py), for MoMo: duplicates,
out-of-order reports, tampered and forged messages, wrong amounts, unknown orders.
"""

from __future__ import annotations

import datetime
import json

import pytest
from django.db import connection

from customers.models import Bill
from payments import applier, services
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    MOMO,
    MOMO_IPN_PATH,
    momo_result,
    wallet_payment,
    wallets,  # noqa: F401 - fixture
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wallets")]
Status = Payment.Status


def _post(client, body, **extra):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(MOMO_IPN_PATH, raw, content_type="application/json", **extra)


def _ipn(client, body, **extra) -> int:
    response = _post(client, body, **extra)
    if response.status_code == 204:
        assert response.content == b""
    else:
        assert response["Content-Type"] == "application/json"
    return response.status_code


def _apply_stored(payment):
    for message in InboundMessage.objects.filter(
        payment=payment, processed_at__isnull=True
    ).order_by("pk"):
        applier.apply_one(message.pk)


def test_a_genuine_success_is_stored_answered_204_and_applied_by_the_worker(client):
    payment = wallet_payment("MOMO", amounts=[452_160, 310_000])
    assert _ipn(client, momo_result(payment)) == 204
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    assert message.signature_valid is True and message.payment == payment
    assert message.processed_at is None and message.response_status == 204
    assert json.loads(message.body)["orderId"] == payment.reference
    payment.refresh_from_db()
    assert payment.status == Status.PENDING

    _apply_stored(payment)
    payment.refresh_from_db()
    message.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == "4088878653"
    assert message.outcome == "succeeded:applied"
    assert set(payment.customer.bills.values_list("status", flat=True)) == {Bill.Status.PAID}
    event = payment.events.get(to_status=Status.SUCCEEDED)
    assert event.source == PaymentEvent.Source.IPN and event.message == message
    # MoMo's own time of the payment (responseTime) is when the bills were paid.
    assert payment.succeeded_at == datetime.datetime(2026, 2, 1, 20, 15, tzinfo=datetime.UTC)


def test_a_repeat_of_the_same_ipn_is_answered_204_and_applied_once(client):
    payment = wallet_payment("MOMO")
    body = momo_result(payment)
    assert _ipn(client, body) == 204
    assert _ipn(client, body) == 204
    _apply_stored(payment)
    assert _ipn(client, body) == 204
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).count() == 1
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


def test_it_refuses_a_tampered_signature_and_stores_it_as_already_processed(client):
    payment = wallet_payment("MOMO")
    forged = {**momo_result(payment), "amount": 100}
    response = _post(client, forged)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    message = InboundMessage.objects.get()
    assert message.signature_valid is False and message.outcome == "invalid_signature"
    assert message.processed_at is not None and message.payment is None
    assert forged["signature"] in message.dedupe_key
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and not payment.events.filter(source="ipn").exists()


def test_a_forged_message_never_poisons_the_genuine_one(client):
    payment = wallet_payment("MOMO")
    genuine = momo_result(payment)
    # A forger replays the genuine signature on a failure, before MoMo's message arrives.
    forged = {**genuine, "resultCode": 1006, "message": "Failed."}
    assert _ipn(client, forged) == 401
    assert _ipn(client, forged) == 401
    assert _ipn(client, genuine) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    assert InboundMessage.objects.filter(signature_valid=False).count() == 1


def test_a_message_signed_with_another_secret_or_unsigned_is_refused(client):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment, secret="someone-elses-secret-key")) == 401
    unsigned = {k: v for k, v in momo_result(payment).items() if k != "signature"}
    assert _ipn(client, unsigned) == 401
    assert InboundMessage.objects.filter(signature_valid=False).count() == 2


def test_a_message_for_another_merchant_code_is_kept_and_never_applied(client):
    payment = wallet_payment("MOMO")
    # Signed with our secret (only MoMo can), naming another merchant code of MoMo's.
    assert _ipn(client, momo_result(payment, partner_code="MOMOOTHER")) == 204
    message = InboundMessage.objects.get()
    assert message.outcome == "wrong_terminal" and message.processed_at is not None
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


def test_an_unknown_order_is_kept_as_not_found(client):
    payment = wallet_payment("MOMO")
    payment.reference = "EVNNOTOURS22"
    assert _ipn(client, momo_result(payment)) == 204
    message = InboundMessage.objects.get()
    assert message.outcome == "order_not_found" and message.signature_valid is True


def test_a_vietqr_or_bank_payment_is_not_an_order_of_momo(client):
    customer, _ = customer_with_bills(unpaid=1)
    qr = services.payment_start(customer_code=customer.code, method="vietqr").payment
    qr.provider_data = {"momo_request_id": "x"}
    assert _ipn(client, momo_result(qr)) == 204
    assert InboundMessage.objects.get().outcome == "order_not_found"


@pytest.mark.parametrize("amount", [452_161, 45_216_000, 0, "452160.0", "abc"])
def test_a_wrong_amount_is_flagged_for_an_agent_and_never_applied(client, amount):
    payment = wallet_payment("MOMO", amounts=[452_160])
    assert _ipn(client, momo_result(payment, amount=amount)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()
    assert InboundMessage.objects.get().outcome == "amount_mismatch"
    assert payment.needs_review
    assert f"reported {amount} VND for a payment of 452160 VND" in payment.review_reason


def test_a_payment_already_settled_is_told_again_and_changes_nothing(client):
    payment = wallet_payment("MOMO")
    services.payment_mark_succeeded(
        payment_id=payment.pk, report=services.Report(source=services.Source.QUERY)
    )
    assert _ipn(client, momo_result(payment)) == 204
    _apply_stored(payment)
    assert InboundMessage.objects.get().outcome == "succeeded:already_done"
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


@pytest.mark.parametrize("code", [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1017, 4001, 4100])
def test_a_failure_fails_the_payment_and_leaves_the_bills_unpaid(client, code):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment, result_code=code)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.provider_txn_id == ""
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()
    event = payment.events.get(to_status=Status.FAILED)
    assert f"resultCode {code}" in event.detail["reason"] and event.source == "ipn"


@pytest.mark.parametrize("code", [1000, 7000, 7002, 8000, 9000])
def test_a_payment_still_in_progress_at_momo_stays_pending(client, code):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment, result_code=code)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and not payment.needs_review
    assert InboundMessage.objects.get().outcome == "pending"


@pytest.mark.parametrize("code", [1080, 1081, 99, 42, 5000])
def test_anything_else_that_names_the_payment_is_flagged_not_applied(client, code):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment, result_code=code)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.needs_review
    assert InboundMessage.objects.get().outcome == "review:flagged"
    assert "The wallet reported something to check" in payment.review_reason


def test_out_of_order_a_late_failure_never_undoes_a_success(client):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment)) == 204
    assert _ipn(client, momo_result(payment, result_code=1006)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.needs_review
    assert set(InboundMessage.objects.values_list("outcome", flat=True)) == {
        "succeeded:applied",
        "failed:flagged",
    }


def test_out_of_order_a_success_after_a_failure_is_kept_for_an_agent(client):
    payment = wallet_payment("MOMO")
    assert _ipn(client, momo_result(payment, result_code=1006)) == 204
    _apply_stored(payment)
    assert _ipn(client, momo_result(payment)) == 204
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.needs_review
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()


def test_an_expired_or_cancelled_payment_still_takes_momos_success(client):
    expired, cancelled = wallet_payment("MOMO"), wallet_payment("MOMO")
    services.payment_expire(
        payment_id=expired.pk, now=expired.expires_at + datetime.timedelta(seconds=1)
    )
    services.payment_cancel(payment_id=cancelled.pk, report=services.Report(source="api"))
    for payment, before in ((expired, Status.EXPIRED), (cancelled, Status.CANCELLED)):
        assert _ipn(client, momo_result(payment, trans_id=hash(before) % 10**9)) == 204
        _apply_stored(payment)
        payment.refresh_from_db()
        assert payment.status == Status.SUCCEEDED
        assert payment.events.get(to_status=Status.SUCCEEDED).from_status == before


def test_only_post_is_accepted_with_the_contracts_error_shape(client):
    response = client.get(MOMO_IPN_PATH)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "body", ["", "not json", "[1, 2]", '"text"', "null", "{" * 2000, b"\xff\xfe"]
)
def test_junk_gets_a_clear_400_never_an_error_page(client, body):
    response = _post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not InboundMessage.objects.exists()


@pytest.mark.parametrize(
    "change",
    [{"orderId": None}, {"orderId": "\x00"}, {"amount": "x" * 5000}, {"orderId": ["EVN"]}],
)
def test_a_json_object_of_the_wrong_shape_is_refused_as_forged(client, change):
    payment = wallet_payment("MOMO")
    assert _ipn(client, {**momo_result(payment), **change}) == 401


def test_an_address_outside_the_partners_list_is_refused_and_nothing_applied(client, settings):
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "MOMO": {**settings.PARTNER_CREDENTIALS["MOMO"], "allowed_ips": "198.51.100.7"},
    }
    payment = wallet_payment("MOMO")
    response = _post(client, momo_result(payment))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "address_not_allowed"
    assert InboundMessage.objects.get().outcome == "address_not_allowed"
    assert _ipn(client, momo_result(payment), REMOTE_ADDR="198.51.100.7") == 204


def test_without_credentials_momo_is_refused_and_not_offered(client, settings):
    payment = wallet_payment("MOMO")
    settings.PARTNER_CREDENTIALS = {
        code: values for code, values in settings.PARTNER_CREDENTIALS.items() if code != "MOMO"
    }
    assert _ipn(client, momo_result(payment)) == 401


@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_database_is_unavailable(client):
    payment = wallet_payment("MOMO")
    body = momo_result(payment)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1  # nothing listens there: PostgreSQL is "down"
    try:
        response = _post(client, body)
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    # MoMo retries; once the database is back the message is stored.
    assert _ipn(client, body) == 204


def test_a_genuine_ipn_costs_the_web_two_queries_and_no_task(
    client, django_assert_num_queries, django_capture_on_commit_callbacks, monkeypatch
):
    from celery import current_app
    from django.core.cache import cache

    from payments.inbox import WAKE_KEY

    sent: list[str] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **_: sent.append(name))
    payment, other = wallet_payment("MOMO"), wallet_payment("MOMO")
    cache.delete(WAKE_KEY)
    for body in (momo_result(payment), momo_result(other)):
        with django_assert_num_queries(2), django_capture_on_commit_callbacks(execute=True):
            assert _ipn(client, body) == 204
    assert sent == ["payments.tasks.apply_inbox"]


def test_the_credentials_it_verifies_with_are_the_partners(client):
    payment = wallet_payment("MOMO")
    assert MOMO["secret"] not in json.dumps(momo_result(payment))
