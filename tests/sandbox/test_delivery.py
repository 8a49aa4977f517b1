"""The bank's outbox: IPNs are sent until acknowledged, late or never when the tester says so."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from payments.channels.vnpay import protocol as vnpay
from payments.models import InboundMessage, Payment
from sandbox import bank, delivery
from sandbox.models import BankTransaction, Notification
from tests.sandbox.support import (
    bank_on_live_server,  # noqa: F401 - fixture
    redirect_payment,
    sandbox_credentials,
)

pytestmark = pytest.mark.django_db
transactional = pytest.mark.django_db(transaction=True)
SECOND = datetime.timedelta(seconds=1)


class _Merchant(BaseHTTPRequestHandler):
    """A merchant server whose answers the test scripts; it records every request."""

    answers: list[tuple[int, bytes]] = []
    seen: list[dict] = []

    def _reply(self) -> None:
        status, body = self.answers.pop(0) if self.answers else (200, b'{"RspCode": "00"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
        self._reply()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        self.seen.append(
            {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
        )
        self._reply()

    def log_message(self, *args):
        pass


@pytest.fixture
def merchant(settings) -> Iterator[type[_Merchant]]:
    handler = type("Merchant", (_Merchant,), {"answers": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.SANDBOX_PORTAL_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


def _approved(ipn_mode: str = "deliver") -> tuple[Payment, BankTransaction]:
    payment = redirect_payment()
    tx = bank.transaction_open(
        dict(parse_qsl(urlsplit(payment.provider_data["redirect_url"]).query))
    )
    return payment, bank.transaction_decide(transaction_id=tx.pk, approve=True, ipn_mode=ipn_mode)


@transactional
def test_the_ipn_reaches_the_portal_which_stores_and_acknowledges_it(
    bank_on_live_server,  # noqa: F811
):
    payment, tx = _approved()
    assert delivery.deliver_due() == 1
    notification = tx.notifications.get()
    assert notification.state == Notification.State.DELIVERED and notification.attempts == 1
    assert json.loads(notification.last_answer) == {"RspCode": "00", "Message": "Confirm Success"}
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.IPN)
    assert message.payment_id == payment.pk and message.signature_valid
    assert delivery.deliver_due() == 0  # acknowledged: never sent again


def test_the_ipn_is_the_signed_result_sent_as_a_get(merchant):
    _payment, tx = _approved()
    delivery.deliver_due()
    (request,) = merchant.seen
    assert request["method"] == "GET" and request["path"].startswith("/callbacks/SANDBOX/ipn/?")
    params = dict(parse_qsl(urlsplit(request["path"]).query, keep_blank_values=True))
    assert params == bank.result_params(tx, sandbox_credentials()["secret"])
    assert vnpay.verify(params, sandbox_credentials()["secret"])


@pytest.mark.parametrize("code", ["00", "02"])
def test_00_and_02_both_stop_the_retries(merchant, code):
    merchant.answers = [(200, json.dumps({"RspCode": code, "Message": "x"}).encode())]
    _payment, tx = _approved()
    delivery.deliver_due()
    assert tx.notifications.get().state == Notification.State.DELIVERED


def test_any_other_answer_is_retried_later_with_backoff_until_it_gives_up(merchant):
    merchant.answers = [
        (200, b'{"RspCode": "99", "Message": "Unknown error"}'),
        (500, b"<html>oops</html>"),
        (200, b'{"RspCode": "97"}'),
    ]
    _payment, tx = _approved()
    now = timezone.now()
    assert delivery.deliver_due(now=now) == 1
    notification = tx.notifications.get()
    assert notification.state == Notification.State.PENDING and notification.attempts == 1
    assert notification.next_attempt_at == now + delivery.RETRY_DELAYS[0]
    assert delivery.deliver_due(now=now + SECOND) == 0  # not due yet
    now += delivery.RETRY_DELAYS[0]
    assert delivery.deliver_due(now=now) == 1
    notification.refresh_from_db()
    assert notification.attempts == 2 and notification.last_status == 500
    assert notification.next_attempt_at == now + delivery.RETRY_DELAYS[1]
    for _attempt in range(20):
        now += datetime.timedelta(hours=1)
        delivery.deliver_due(now=now)
    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED  # the merchant recovered
    assert len(merchant.seen) == 4


def test_a_merchant_that_never_answers_right_is_given_up_after_ten_attempts(merchant):
    merchant.answers = [(503, b"{}")] * 20
    _payment, tx = _approved()
    now = timezone.now()
    for _attempt in range(15):
        delivery.deliver_due(now=now)
        now += datetime.timedelta(hours=1)
    notification = tx.notifications.get()
    assert notification.state == Notification.State.GAVE_UP and notification.attempts == 10


def test_an_unreachable_merchant_is_retried(settings):
    settings.SANDBOX_PORTAL_URL = "http://127.0.0.1:1"
    _payment, tx = _approved()
    delivery.deliver_due(timeout=1)
    notification = tx.notifications.get()
    assert notification.state == Notification.State.PENDING and notification.attempts == 1
    assert notification.last_answer.startswith("no answer")


def test_a_delayed_ipn_waits_and_a_dropped_one_is_never_sent(merchant, settings):
    settings.SANDBOX_IPN_DELAY_SECONDS = 120
    _late_payment, late = _approved("delay")
    _lost_payment, lost = _approved("drop")
    now = timezone.now()
    assert delivery.deliver_due(now=now) == 0
    assert delivery.deliver_due(now=now + datetime.timedelta(seconds=121)) == 1
    assert late.notifications.get().state == Notification.State.DELIVERED
    assert lost.notifications.get().state == Notification.State.DROPPED
    assert len(merchant.seen) == 1


@transactional
def test_two_couriers_never_send_the_same_notification(merchant):
    for _index in range(6):
        _approved()
    now = timezone.now()
    barrier = threading.Barrier(2)
    counts: list[int] = []
    failures: list[BaseException] = []

    def courier() -> None:
        try:
            barrier.wait()
            counts.append(delivery.deliver_due(now=now))
        except BaseException as exc:  # a courier that broke must fail the test, not vanish
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=courier) for _index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(counts) == 2 and sum(counts) == 6 and len(merchant.seen) == 6


@transactional
def test_the_bank_command_delivers_what_is_due(bank_on_live_server, capsys):  # noqa: F811
    payment, tx = _approved()
    call_command("sandbox_bank", "--once")
    assert tx.notifications.get().state == Notification.State.DELIVERED
    assert InboundMessage.objects.filter(payment=payment).exists()
    assert "EVNHT001" in capsys.readouterr().out
