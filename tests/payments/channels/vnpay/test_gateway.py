"""The poller: when it asks the bank, what it does with each answer, and what it never does."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.db import transaction
from django.utils import timezone

from customers.models import Bill
from payments import poller, services, tasks
from payments.channels.vnpay import protocol as vnpay
from payments.models import InboundMessage, Payment, PaymentEvent
from sandbox import bank
from sandbox.models import BankTransaction
from tests.conftest import wait_until
from tests.factories import customer_with_bills
from tests.sandbox.support import (
    API_PATH,
    bank_on_live_server,  # noqa: F401 - fixture
    bank_worker,  # noqa: F401 - fixture
    redirect_payment,
)

Status = Payment.Status
MIN = datetime.timedelta(minutes=1)


# --- The schedule ---------------------------------------------------------------------------
def _payment_started_at(start: datetime.datetime) -> Payment:
    return Payment(created_at=start, expires_at=start + 15 * MIN)


def test_the_bank_is_asked_1_2_5_and_15_minutes_in_then_every_15_until_expiry_and_grace():
    start = datetime.datetime(2026, 2, 1, 8, 0, tzinfo=datetime.UTC)
    payment = _payment_started_at(start)
    asked = []
    moment: datetime.datetime | None = start
    while moment is not None:
        moment = poller.poll_next_at(payment=payment, now=moment)
        if moment is not None:
            asked.append(int((moment - start) / MIN))
    # Expiry at 15 minutes, plus 30 minutes of grace: the last question is at 45.
    assert asked == [1, 2, 5, 15, 30, 45]


def test_a_check_made_between_steps_keeps_the_schedule():
    start = datetime.datetime(2026, 2, 1, 8, 0, tzinfo=datetime.UTC)
    payment = _payment_started_at(start)
    assert poller.poll_next_at(payment=payment, now=start + 90 * MIN / 60) == start + 2 * MIN
    assert poller.poll_next_at(payment=payment, now=start + 16 * MIN) == start + 30 * MIN
    assert poller.poll_next_at(payment=payment, now=start + 44 * MIN) == start + 45 * MIN
    assert poller.poll_next_at(payment=payment, now=start + 46 * MIN) is None


def test_the_schedule_and_grace_come_from_settings(settings):
    settings.GATEWAY_POLL_SCHEDULE = [MIN, 3 * MIN]
    settings.GATEWAY_POLL_GRACE = 0 * MIN
    start = datetime.datetime(2026, 2, 1, 8, 0, tzinfo=datetime.UTC)
    payment = _payment_started_at(start)
    asked, moment = [], start
    while (moment := poller.poll_next_at(payment=payment, now=moment)) is not None:
        asked.append(int((moment - start) / MIN))
    assert asked == [1, 3, 6, 9, 12, 15]


@pytest.mark.django_db
def test_only_open_redirect_payments_whose_check_is_due_are_polled():
    now = timezone.now()
    due = redirect_payment()
    later = redirect_payment()
    expired = redirect_payment()
    settled = redirect_payment()
    customer, _ = customer_with_bills(unpaid=1)
    vietqr = services.payment_start(customer_code=customer.code, method="vietqr").payment
    for payment in (due, expired, settled, vietqr):
        Payment.objects.filter(pk=payment.pk).update(next_poll_at=now - MIN)
    Payment.objects.filter(pk=later.pk).update(next_poll_at=now + MIN)
    Payment.objects.filter(pk=expired.pk).update(status=Status.EXPIRED)
    services.payment_mark_succeeded(payment_id=settled.pk, report=services.Report(source="ipn"))
    assert set(poller.payments_due_for_poll(now=now)) == {due.pk, expired.pk}
    assert len(poller.payments_due_for_poll(now=now, limit=1)) == 1


@pytest.mark.django_db
def test_a_new_redirect_payment_is_first_checked_a_minute_after_it_starts():
    payment = redirect_payment()
    assert payment.next_poll_at == payment.created_at + MIN
    assert poller.payments_due_for_poll(now=payment.created_at + MIN) == [payment.pk]
    assert poller.payments_due_for_poll(now=payment.created_at + MIN / 2) == []


# --- Asking the sandbox bank ----------------------------------------------------------------
def _open_at_bank(payment: Payment) -> BankTransaction:
    """The customer reached the bank's page (the bank now knows the payment)."""
    response = requests.get(payment.provider_data["redirect_url"], timeout=10)
    assert response.status_code == 200, response.text
    return BankTransaction.objects.get(txn_ref=payment.reference)


def _decide(payment: Payment, *, approve: bool, code: str = "24") -> BankTransaction:
    tx = _open_at_bank(payment)
    return bank.transaction_decide(
        transaction_id=tx.pk,
        approve=approve,
        decline_code=code,
        ipn_mode=BankTransaction.IpnMode.DROP,  # the IPN is lost: only the poller can tell
    )


pytestmark_transactional = pytest.mark.django_db(transaction=True)


@pytestmark_transactional
def test_a_payment_approved_at_the_bank_settles_on_poll_and_the_answer_is_kept(
    bank_on_live_server,  # noqa: F811
):
    payment = redirect_payment(amounts=[452_160, 310_000])
    tx = _decide(payment, approve=True)
    assert poller.payment_poll(payment_id=payment.pk) == "succeeded:applied"
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == tx.transaction_no
    assert payment.next_poll_at is None
    assert set(Bill.objects.filter(customer=payment.customer).values_list("status", flat=True)) == {
        Bill.Status.PAID
    }
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY)
    assert message.signature_valid and message.payment == payment
    assert message.outcome == "succeeded:applied" and message.processed_at is not None
    assert json.loads(message.body)["vnp_TransactionStatus"] == "00"
    event = payment.events.get(to_status=Status.SUCCEEDED)
    assert event.source == PaymentEvent.Source.QUERY and event.message == message
    # Nothing more to ask: a second run changes nothing.
    assert poller.payment_poll(payment_id=payment.pk) == "not_pollable"


@pytestmark_transactional
def test_a_definite_decline_from_the_bank_fails_the_payment(bank_on_live_server):  # noqa: F811
    payment = redirect_payment()
    _decide(payment, approve=False, code="51")
    assert poller.payment_poll(payment_id=payment.pk) == "failed:applied"
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.next_poll_at is None
    assert not Bill.objects.filter(customer=payment.customer, status=Bill.Status.PAID).exists()


@pytestmark_transactional
def test_a_payment_still_open_at_the_bank_is_asked_again_later(bank_on_live_server):  # noqa: F811
    payment = redirect_payment()
    _open_at_bank(payment)
    now = payment.created_at + MIN
    assert poller.payment_poll(payment_id=payment.pk, now=now) == "pending"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert payment.next_poll_at == payment.created_at + 2 * MIN and payment.poll_count == 1


@pytestmark_transactional
def test_a_payment_the_bank_never_saw_is_not_failed(bank_on_live_server):  # noqa: F811
    payment = redirect_payment()
    assert poller.payment_poll(payment_id=payment.pk) == "nothing_yet"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.next_poll_at is not None


@pytestmark_transactional
def test_a_late_success_settles_an_expired_payment(bank_on_live_server):  # noqa: F811
    payment = redirect_payment()
    _decide(payment, approve=True)
    services.payment_expire(payment_id=payment.pk, now=payment.expires_at + MIN)
    assert poller.payment_poll(payment_id=payment.pk) == "succeeded:applied"
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED


@pytestmark_transactional
def test_the_poller_and_a_late_ipn_settle_the_payment_once(bank_on_live_server, client):  # noqa: F811
    payment = redirect_payment()
    tx = _decide(payment, approve=True)
    assert poller.payment_poll(payment_id=payment.pk) == "succeeded:applied"
    params = bank.result_params(tx, bank.merchant().secret)
    assert client.get("/callbacks/SANDBOX/ipn/", params).json()["RspCode"] == "02"
    assert PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED).count() == 1


def test_http_to_the_bank_is_refused_inside_a_transaction(transactional_db):
    payment = redirect_payment()
    with transaction.atomic(), pytest.raises(RuntimeError, match="transaction"):
        poller.payment_poll(payment_id=payment.pk)


# --- Banks that do not answer well ----------------------------------------------------------
@pytest.fixture
def silent_bank() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    listener.close()


class _CannedBank(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"{}")
    received: list[dict] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        status, body = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned_bank() -> Iterator[tuple[str, type[_CannedBank]]]:
    """A bank whose answer the test chooses (a real HTTP server on a free port)."""
    handler = type("Bank", (_CannedBank,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{API_PATH}", handler
    server.shutdown()
    server.server_close()


def _bank_api_at(settings, url: str) -> None:
    credentials = dict(settings.PARTNER_CREDENTIALS)
    credentials["SANDBOX"] = {**credentials["SANDBOX"], "api_url": url}
    settings.PARTNER_CREDENTIALS = credentials


@pytestmark_transactional
def test_a_bank_timeout_never_fails_the_payment(settings, silent_bank):
    settings.GATEWAY_HTTP_TIMEOUT = (0.5, 0.5)
    _bank_api_at(settings, silent_bank)
    payment = redirect_payment()
    now = payment.created_at + MIN
    assert poller.payment_poll(payment_id=payment.pk, now=now) == "no_answer"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert payment.next_poll_at == payment.created_at + 2 * MIN and payment.poll_count == 1
    assert not InboundMessage.objects.exists()


@pytestmark_transactional
def test_a_bank_that_is_down_or_answers_nonsense_never_fails_the_payment(settings, canned_bank):
    url, handler = canned_bank
    payment = redirect_payment()
    _bank_api_at(settings, "http://127.0.0.1:1/api")  # connection refused
    assert poller.payment_poll(payment_id=payment.pk) == "no_answer"
    _bank_api_at(settings, url)
    handler.answer = (502, b"<html>Bad gateway</html>")
    assert poller.payment_poll(payment_id=payment.pk) == "no_answer"
    handler.answer = (200, b"[1, 2]")
    assert poller.payment_poll(payment_id=payment.pk) == "no_answer"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.poll_count == 3


def _answer_for(request: dict, secret: str, **fields: str) -> bytes:
    answer = {
        "vnp_ResponseId": "c" * 32,
        "vnp_Command": "querydr",
        "vnp_ResponseCode": "00",
        "vnp_Message": "ok",
        "vnp_TmnCode": request["vnp_TmnCode"],
        "vnp_TxnRef": request["vnp_TxnRef"],
        "vnp_Amount": "100",
        "vnp_BankCode": "NCB",
        "vnp_PayDate": "20260201033500",
        "vnp_TransactionNo": "555",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "02",
        "vnp_OrderInfo": request["vnp_OrderInfo"],
        **fields,
    }
    answer["vnp_SecureHash"] = vnpay.sign_query_response(answer, secret)
    return json.dumps(answer).encode()


@pytestmark_transactional
def test_an_answer_with_a_bad_signature_is_kept_but_changes_nothing(settings, canned_bank):
    url, handler = canned_bank
    _bank_api_at(settings, url)
    payment = redirect_payment(amounts=[1])
    probe = {"vnp_TmnCode": "EVNHT001", "vnp_TxnRef": payment.reference, "vnp_OrderInfo": "x"}
    handler.answer = (200, _answer_for(probe, "not-the-secret"))
    assert poller.payment_poll(payment_id=payment.pk) == "invalid_signature"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    message = InboundMessage.objects.get()
    assert message.kind == InboundMessage.Kind.QUERY and message.signature_valid is False
    assert message.outcome == "invalid_signature" and message.processed_at is not None


@pytestmark_transactional
def test_the_query_is_signed_and_names_the_pay_requests_create_date(settings, canned_bank):
    url, handler = canned_bank
    _bank_api_at(settings, url)
    payment = redirect_payment()
    handler.answer = (200, b"{}")
    poller.payment_poll(payment_id=payment.pk)
    (request,) = handler.received
    assert request["vnp_Command"] == "querydr" and request["vnp_TxnRef"] == payment.reference
    assert request["vnp_TransactionDate"] == vnpay.format_time(payment.created_at)
    assert len(request["vnp_RequestId"]) <= 32
    secret = settings.PARTNER_CREDENTIALS["SANDBOX"]["secret"]
    piped = "|".join(request[name] for name in vnpay.QUERY_REQUEST_FIELDS)
    assert request["vnp_SecureHash"] == (
        hmac.new(secret.encode(), piped.encode(), hashlib.sha512).hexdigest()
    )


@pytestmark_transactional
def test_an_answer_about_another_amount_flags_the_payment_instead_of_settling_it(
    settings, canned_bank
):
    url, handler = canned_bank
    _bank_api_at(settings, url)
    payment = redirect_payment(amounts=[452_160])
    secret = settings.PARTNER_CREDENTIALS["SANDBOX"]["secret"]
    request = {
        "vnp_TmnCode": settings.PARTNER_CREDENTIALS["SANDBOX"]["tmn_code"],
        "vnp_TxnRef": payment.reference,
        "vnp_OrderInfo": payment.provider_data["vnp_OrderInfo"],
    }
    handler.answer = (200, _answer_for(request, secret, vnp_TransactionStatus="00"))
    assert poller.payment_poll(payment_id=payment.pk) == "amount_mismatch"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.needs_review


# --- The beat task and the real worker ------------------------------------------------------
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_finds_a_payment_whose_ipn_was_lost_and_the_worker_settles_it(
    bank_worker,  # noqa: F811
):
    payment = redirect_payment()
    _decide(payment, approve=True)  # approved at the bank, IPN dropped, browser never returned
    services.payment_set_poll_schedule(payment_id=payment.pk, next_poll_at=timezone.now())
    tasks.poll_pending_gateway_payments.delay()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED, 30)
    assert not InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).exists()
    assert InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY).outcome == (
        "succeeded:applied"
    )
