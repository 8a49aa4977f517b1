"""GET /callbacks/{partner}/ipn/: checks in the protocol's order, the inbox, exactly-once effects."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from customers.models import Bill
from payments import applier, services
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.conftest import wait_until
from tests.factories import customer_with_bills
from tests.sandbox.support import (
    bank_message,
    bank_on_live_server,  # noqa: F401 - fixture
    ipn_url,
    redirect_payment,
)

pytestmark = pytest.mark.django_db
Status = Payment.Status


def _ipn(client, params, partner="SANDBOX"):
    response = client.get(ipn_url(params, partner))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def _apply_stored(payment):
    """What the worker does: process every stored, unprocessed IPN of the payment."""
    for message in InboundMessage.objects.filter(payment=payment, processed_at__isnull=True):
        applier.apply_one(message.pk)


def test_a_genuine_success_is_stored_answered_00_and_applied_by_the_worker(client):
    payment = redirect_payment(amounts=[452_160, 310_000])
    assert _ipn(client, bank_message(payment)) == {"RspCode": "00", "Message": "Confirm Success"}
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    assert message.signature_valid is True and message.payment == payment
    assert message.processed_at is None  # stored and answered; a worker applies it
    assert message.response_body == {"RspCode": "00", "Message": "Confirm Success"}
    assert "vnp_SecureHash=" in message.body and message.headers["Remote-Addr"] == "127.0.0.1"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING

    _apply_stored(payment)
    payment.refresh_from_db()
    message.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == "14422574"
    assert payment.next_poll_at is None
    assert message.outcome == "succeeded:applied"
    assert set(payment.customer.bills.values_list("status", flat=True)) == {Bill.Status.PAID}
    event = payment.events.get(to_status=Status.SUCCEEDED)
    assert event.source == PaymentEvent.Source.IPN and event.message == message
    # The bank's own payment time (GMT+7) is when the bills were paid.
    assert payment.succeeded_at == datetime.datetime(2026, 1, 31, 20, 35, tzinfo=datetime.UTC)


def test_a_repeat_of_the_same_ipn_is_answered_02_and_applied_once(client):
    payment = redirect_payment()
    params = bank_message(payment)
    assert _ipn(client, params)["RspCode"] == "00"
    assert _ipn(client, params) == {"RspCode": "02", "Message": "Order already confirmed"}
    _apply_stored(payment)
    assert _ipn(client, params)["RspCode"] == "02"
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).count() == 1
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


def test_it_rejects_a_tampered_signature_and_stores_it_as_already_processed(client):
    payment = redirect_payment()
    forged = {**bank_message(payment), "vnp_Amount": "100"}
    assert _ipn(client, forged) == {"RspCode": "97", "Message": "Invalid signature"}
    message = InboundMessage.objects.get()
    assert message.signature_valid is False
    assert message.processed_at is not None and message.outcome == "invalid_signature"
    assert message.payment is None and forged["vnp_SecureHash"] in message.dedupe_key
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and not payment.events.filter(source="ipn").exists()


def test_a_forged_message_never_poisons_the_genuine_one(client):
    payment = redirect_payment()
    genuine = bank_message(payment)
    # A forger replays the genuine signature on a failure, before the bank's message arrives.
    forged = {**genuine, "vnp_ResponseCode": "24", "vnp_TransactionStatus": "02"}
    assert _ipn(client, forged)["RspCode"] == "97"
    assert _ipn(client, forged)["RspCode"] == "97"  # recomputed, never replayed from a cache
    assert _ipn(client, genuine)["RspCode"] == "00"
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    assert InboundMessage.objects.filter(signature_valid=False).count() == 1


def test_a_message_signed_with_another_secret_is_rejected(client):
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment, secret="someone-elses-secret"))["RspCode"] == "97"


def test_an_unsigned_message_or_an_unknown_partner_is_rejected(client):
    payment = redirect_payment()
    unsigned = {k: v for k, v in bank_message(payment).items() if k != "vnp_SecureHash"}
    assert _ipn(client, unsigned)["RspCode"] == "97"
    assert _ipn(client, bank_message(payment), partner="NOSUCHBANK")["RspCode"] == "97"
    # VCB is a partner but no gateway, and has no secret here.
    assert _ipn(client, bank_message(payment), partner="VCB")["RspCode"] == "97"
    assert InboundMessage.objects.filter(signature_valid=False).count() == 3


def test_a_message_for_another_terminal_is_refused_before_looking_up_the_order(client):
    payment = redirect_payment()
    answer = _ipn(client, bank_message(payment, tmn_code="OTHERTMN"))
    assert answer == {"RspCode": "01", "Message": "Order not found"}
    message = InboundMessage.objects.get()
    assert message.outcome == "wrong_terminal" and message.processed_at is not None
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


def test_an_unknown_reference_is_answered_01_and_kept(client):
    payment = redirect_payment()
    payment.reference = "EVNNOTOURS22"
    answer = _ipn(client, bank_message(payment))
    assert answer == {"RspCode": "01", "Message": "Order not found"}
    message = InboundMessage.objects.get()
    assert message.outcome == "order_not_found" and message.signature_valid is True


def test_a_vietqr_payment_is_not_an_order_of_the_gateway(client):
    customer, _ = customer_with_bills(unpaid=1)
    qr = services.payment_start(customer_code=customer.code, method="vietqr").payment
    assert _ipn(client, bank_message(qr))["RspCode"] == "01"


@pytest.mark.parametrize("amount_x100", ["45216100", "452160", "", "45216050", "abc"])
def test_a_wrong_amount_is_answered_04_and_never_applied(client, amount_x100):
    payment = redirect_payment(amounts=[452_160])
    answer = _ipn(client, bank_message(payment, amount_x100=amount_x100))
    assert answer == {"RspCode": "04", "Message": "Invalid amount"}
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()
    message = InboundMessage.objects.get()
    assert message.outcome == "amount_mismatch"
    # The bank says money moved, but not the right amount: an agent must look.
    assert payment.needs_review and "for a payment of 452160 VND" in payment.review_reason


def test_the_checks_run_in_the_protocols_order(client):
    payment = redirect_payment()
    wrong_everything = bank_message(payment, tmn_code="OTHERTMN", amount_x100="1")
    assert _ipn(client, {**wrong_everything, "vnp_SecureHash": "0" * 128})["RspCode"] == "97"
    assert _ipn(client, wrong_everything)["RspCode"] == "01"  # terminal before amount
    services.payment_cancel(payment_id=payment.pk, report=services.Report(source="api"))
    assert _ipn(client, bank_message(payment, amount_x100="1"))["RspCode"] == "04"


def test_a_payment_already_final_answers_02(client):
    payment = redirect_payment()
    services.payment_mark_succeeded(
        payment_id=payment.pk, report=services.Report(source=services.Source.QUERY)
    )
    assert _ipn(client, bank_message(payment))["RspCode"] == "02"
    _apply_stored(payment)
    message = InboundMessage.objects.get()
    assert message.outcome == "succeeded:already_done"
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


def test_a_failure_report_fails_the_payment_and_leaves_the_bills_unpaid(client):
    payment = redirect_payment()
    params = bank_message(payment, response_code="51", status="02")
    assert _ipn(client, params)["RspCode"] == "00"
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.provider_txn_id == ""
    assert not payment.customer.bills.filter(status=Bill.Status.PAID).exists()
    event = payment.events.get(to_status=Status.FAILED)
    assert "51" in event.detail["reason"] and event.source == PaymentEvent.Source.IPN


def test_an_expired_payment_still_accepts_the_banks_success(client):
    payment = redirect_payment()
    later = payment.expires_at + datetime.timedelta(seconds=1)
    services.payment_expire(payment_id=payment.pk, now=later)
    assert _ipn(client, bank_message(payment))["RspCode"] == "00"
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    event = payment.events.get(to_status=Status.SUCCEEDED)
    assert event.from_status == Status.EXPIRED


def test_a_success_for_a_cancelled_payment_still_pays_the_bills(client):
    """Cancelled on our side while the household was approving at the bank: the money moved,
    so the bills are paid (as for an expired payment), never left unapplied."""
    payment = redirect_payment()
    services.payment_cancel(payment_id=payment.pk, report=services.Report(source="api"))
    assert _ipn(client, bank_message(payment))["RspCode"] == "00"
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    assert payment.events.get(to_status=Status.SUCCEEDED).from_status == Status.CANCELLED
    assert not payment.customer.bills.filter(status=Bill.Status.UNPAID).exists()


def test_a_suspicious_debit_is_flagged_for_review_and_not_settled(client):
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment, response_code="07", status="00"))["RspCode"] == "00"
    _apply_stored(payment)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.needs_review


def test_only_get_is_accepted_with_the_contracts_error_shape(client):
    response = client.post("/callbacks/SANDBOX/ipn/", data={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_address_outside_the_partners_list_gets_99_and_nothing_applied(client, settings):
    credentials = dict(settings.PARTNER_CREDENTIALS)
    credentials["SANDBOX"] = {**credentials["SANDBOX"], "allowed_ips": "198.51.100.7, 10.0.0.2"}
    settings.PARTNER_CREDENTIALS = credentials
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment))["RspCode"] == "99"
    message = InboundMessage.objects.get()
    assert message.outcome == "address_not_allowed" and message.processed_at is not None
    response = client.get(ipn_url(bank_message(payment)), REMOTE_ADDR="10.0.0.2")
    assert response.json()["RspCode"] == "00"


def _allow(settings, allowed_ips: str) -> None:
    credentials = dict(settings.PARTNER_CREDENTIALS)
    credentials["SANDBOX"] = {**credentials["SANDBOX"], "allowed_ips": allowed_ips}
    settings.PARTNER_CREDENTIALS = credentials


def test_the_partners_list_holds_networks_not_strings(client, settings):
    _allow(settings, "198.51.100.7, 127.0.0.0/8")
    payment = redirect_payment()
    # The test client calls from 127.0.0.1, inside 127.0.0.0/8.
    assert _ipn(client, bank_message(payment))["RspCode"] == "00"
    other = redirect_payment()
    ipv6 = client.get(ipn_url(bank_message(other)), REMOTE_ADDR="2001:db8::7")
    assert ipv6.json()["RspCode"] == "99"
    _allow(settings, "2001:DB8::/32")
    assert client.get(ipn_url(bank_message(other)), REMOTE_ADDR="2001:db8::7").json() == {
        "RspCode": "00",
        "Message": "Confirm Success",
    }


def test_an_unreadable_entry_is_ignored_with_a_warning_and_never_admits_everyone(
    client, settings, caplog
):
    _allow(settings, "127.0.0.1/33")
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment))["RspCode"] == "99"
    assert "PARTNER_SANDBOX_ALLOWED_IPS" in caplog.text and "127.0.0.1/33" in caplog.text
    assert [r.levelname for r in caplog.records if "127.0.0.1/33" in r.getMessage()] == ["WARNING"]
    _allow(settings, "127.0.0.1/33, 127.0.0.1")
    assert _ipn(client, bank_message(payment))["RspCode"] == "00"


@pytest.mark.django_db(transaction=True)
def test_it_answers_99_when_the_database_is_unavailable(client):
    payment = redirect_payment()
    params = bank_message(payment)
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 1  # nothing listens there: PostgreSQL is "down"
    try:
        response = client.get(ipn_url(params))
    finally:
        connection.settings_dict["PORT"] = port
        connection.close()
    assert response.status_code == 200
    assert response.json() == {"RspCode": "99", "Message": "Unknown error"}
    # The bank retries; once the database is back the message is stored and answered.
    assert client.get(ipn_url(params)).json()["RspCode"] == "00"


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_still_answers_00_and_the_sweeper_sends_the_row_later(client, broker_down):
    payment = redirect_payment()
    assert _ipn(client, bank_message(payment))["RspCode"] == "00"
    message = InboundMessage.objects.get()
    assert message.processed_at is None
    # No applier was woken: the sweeper's drain applies it.
    assert applier.apply_waiting() == 1
    message.refresh_from_db()
    assert message.outcome == InboundMessage.Outcome.SUCCEEDED_APPLIED


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_ten_identical_ipns_at_once_answer_one_00_and_nine_02_and_apply_once(
    bank_on_live_server,  # noqa: F811
    celery_worker,
):
    payment = redirect_payment(amounts=[452_160, 310_000])
    url = bank_on_live_server.url + ipn_url(bank_message(payment))
    start = threading.Barrier(10)

    def send(_index: int) -> str:
        start.wait(timeout=30)
        return requests.get(url, timeout=60).json()["RspCode"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(send, range(10)))
    assert sorted(codes) == ["00"] + ["02"] * 9

    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED, 30)
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    wait_until(lambda: InboundMessage.objects.get(pk=message.pk).processed_at, 30)
    message.refresh_from_db()
    assert message.outcome == "succeeded:applied" and message.attempts == 0
    assert PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED).count() == 1
    bills = Bill.objects.filter(customer=payment.customer)
    assert {bill.status for bill in bills} == {Bill.Status.PAID}
    assert {bill.paid_by_id for bill in bills} == {payment.pk}


@pytest.mark.parametrize(
    "path",
    [
        "/callbacks/SANDBOX/ipn/",
        "/callbacks/SANDBOX/ipn/?vnp_TxnRef=%00&vnp_SecureHash=%00",
        "/callbacks/SAND%00BOX/ipn/?vnp_Amount=1",
        "/callbacks/" + "X" * 300 + "/ipn/?vnp_SecureHash=" + "f" * 5000,
        "/callbacks/SANDBOX/ipn/?vnp_SecureHash=%C3%BC&vnp_OrderInfo=%E1%BB%87%FF",
    ],
)
def test_junk_gets_the_protocols_answer_never_an_error_page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"RspCode": "97", "Message": "Invalid signature"}


def test_a_genuine_ipn_costs_the_web_two_queries_and_no_task(
    client, django_assert_num_queries, django_capture_on_commit_callbacks, monkeypatch
):
    """Its payment with its partner, then the inbox row with its answer; an applier is woken
    unless one is awake, never a task per message."""
    from celery import current_app
    from django.core.cache import cache

    from payments.inbox import WAKE_KEY

    sent: list[str] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **_: sent.append(name))
    payment, other = redirect_payment(), redirect_payment()
    cache.delete(WAKE_KEY)
    for each in (payment, other):
        with django_assert_num_queries(2), django_capture_on_commit_callbacks(execute=True):
            assert _ipn(client, bank_message(each))["RspCode"] == "00"
    assert sent == ["payments.tasks.apply_inbox"]  # the second one found the applier awake
    assert InboundMessage.objects.filter(processed_at__isnull=True).count() == 2
