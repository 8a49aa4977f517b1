"""The sandbox bank's payment page: it checks the merchant's request, shows it, and decides."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from payments.channels.vnpay import protocol as vnpay
from sandbox import bank, protocol
from sandbox.models import BankTransaction, Notification
from tests.sandbox.support import redirect_payment

pytestmark = pytest.mark.django_db


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _open(client, payment):
    return client.get(_path(payment.provider_data["redirect_url"]))


def _decide(client, tx, decision, **fields):
    return client.post(
        "/sandbox/paymentv2/decide/",
        {"transaction": str(tx.pk), "decision": decision, "ipn": "deliver", **fields},
    )


def _secret():
    return django_settings.PARTNER_CREDENTIALS["SANDBOX"]["secret"]


def test_it_shows_the_merchant_the_amount_and_the_reference(client):
    payment = redirect_payment(amounts=[452_160, 310_000])
    response = _open(client, payment)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Công ty Điện lực Hà Tĩnh" in page and "EVNHT001" in page
    assert "762.160 ₫" in page and payment.reference in page
    assert 'value="approve"' in page and 'value="decline"' in page
    assert 'value="51"' in page and 'value="24"' in page
    tx = BankTransaction.objects.get()
    assert tx.amount == 76_216_000 and tx.state == BankTransaction.State.OPEN


def test_its_page_lets_the_decision_go_back_to_the_merchant_and_nowhere_else(client, settings):
    payment = redirect_payment()
    policy = _open(client, payment)["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:8000;" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_it_speaks_the_language_the_merchant_asked_for(client):
    payment = redirect_payment()
    page = _open(client, payment).content.decode()
    assert '<html lang="vi">' in page and "Xác nhận thanh toán" in page
    url = payment.provider_data["redirect_url"]
    params = dict(parse_qsl(urlsplit(url).query))
    params["vnp_Locale"] = "en"
    english = protocol.signed({k: v for k, v in params.items() if k != "vnp_SecureHash"}, _secret())
    page = client.get("/sandbox/paymentv2/vpcpay.html", english).content.decode()
    assert '<html lang="en">' in page and "Confirm your payment" in page


@pytest.mark.parametrize(
    "change, code",
    [
        ({"vnp_Amount": "100"}, "97"),
        ({"vnp_SecureHash": "0" * 128}, "97"),
        ({"vnp_TmnCode": "OTHERTMN"}, "02"),
        ({"vnp_ReturnUrl": ""}, "03"),
    ],
)
def test_it_refuses_a_request_it_cannot_trust(client, change, code):
    payment = redirect_payment()
    params = dict(parse_qsl(urlsplit(payment.provider_data["redirect_url"]).query))
    response = client.get("/sandbox/paymentv2/vpcpay.html", {**params, **change})
    assert response.status_code == 400
    assert f'data-code="{code}"' in response.content.decode()
    assert not BankTransaction.objects.exists()


def test_it_refuses_a_request_whose_window_has_expired(client):
    payment = redirect_payment()
    params = dict(parse_qsl(urlsplit(payment.provider_data["redirect_url"]).query))
    past = protocol.stamp(timezone.now() - datetime.timedelta(minutes=1))
    params = protocol.signed(
        {**{k: v for k, v in params.items() if k != "vnp_SecureHash"}, "vnp_ExpireDate": past},
        _secret(),
    )
    response = client.get("/sandbox/paymentv2/vpcpay.html", params)
    assert response.status_code == 400 and 'data-code="11"' in response.content.decode()


def test_opening_the_same_payment_twice_is_one_transaction(client):
    payment = redirect_payment()
    assert _open(client, payment).status_code == 200
    assert _open(client, payment).status_code == 200
    assert BankTransaction.objects.count() == 1


def test_approve_sends_the_browser_back_with_signed_parameters_and_queues_the_ipn(client):
    payment = redirect_payment(amounts=[452_160])
    _open(client, payment)
    tx = BankTransaction.objects.get()
    response = _decide(client, tx, "approve")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("http://127.0.0.1:8000/pay/return/SANDBOX/?")
    params = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    # The portal's own verifier accepts what the bank's independent signer produced.
    assert vnpay.verify(params, _secret())
    assert params["vnp_Amount"] == "45216000" and params["vnp_TxnRef"] == payment.reference
    assert params["vnp_ResponseCode"] == "00" and params["vnp_TransactionStatus"] == "00"
    assert params["vnp_TmnCode"] == "EVNHT001" and params["vnp_TransactionNo"].isdigit()
    assert set(params) == {
        "vnp_Amount", "vnp_BankCode", "vnp_BankTranNo", "vnp_CardType", "vnp_OrderInfo",
        "vnp_PayDate", "vnp_ResponseCode", "vnp_TmnCode", "vnp_TransactionNo",
        "vnp_TransactionStatus", "vnp_TxnRef", "vnp_SecureHash",
    }  # fmt: skip
    ipn = Notification.objects.get()
    assert ipn.kind == Notification.Kind.IPN and ipn.state == Notification.State.PENDING
    assert ipn.url == "http://127.0.0.1:8000/callbacks/SANDBOX/ipn/"
    assert ipn.payload == params and ipn.next_attempt_at <= timezone.now()


@pytest.mark.parametrize("code", ["51", "24", "11", "75"])
def test_decline_sends_the_chosen_failure_code(client, code):
    payment = redirect_payment()
    _open(client, payment)
    tx = BankTransaction.objects.get()
    response = _decide(client, tx, "decline", reason=code)
    params = dict(parse_qsl(urlsplit(response["Location"]).query))
    assert vnpay.verify(params, _secret())
    assert params["vnp_ResponseCode"] == code and params["vnp_TransactionStatus"] == "02"
    # A customer's own cancel never reached the core banking system: it has no number.
    assert (params["vnp_TransactionNo"] == "0") == (code == "24")
    assert "vnp_BankTranNo" not in params


def test_the_ipn_can_be_dropped_or_delivered_late(client, settings):
    settings.SANDBOX_IPN_DELAY_SECONDS = 300
    first, second = redirect_payment(), redirect_payment()
    _open(client, first)
    _open(client, second)
    one = BankTransaction.objects.get(txn_ref=first.reference)
    two = BankTransaction.objects.get(txn_ref=second.reference)
    _decide(client, one, "approve", ipn="drop")
    _decide(client, two, "approve", ipn="delay")
    assert one.notifications.get().state == Notification.State.DROPPED
    late = two.notifications.get()
    assert late.state == Notification.State.PENDING
    delay = late.next_attempt_at - BankTransaction.objects.get(pk=two.pk).decided_at
    assert delay == datetime.timedelta(seconds=300)


def test_the_default_ipn_choice_comes_from_settings(client, settings):
    settings.SANDBOX_IPN_MODE = "drop"
    payment = redirect_payment()
    page = _open(client, payment).content.decode()
    assert 'value="drop" checked' in page


def test_a_second_decision_changes_nothing(client):
    payment = redirect_payment()
    _open(client, payment)
    tx = BankTransaction.objects.get()
    _decide(client, tx, "approve")
    response = _decide(client, tx, "decline", reason="51")
    params = dict(parse_qsl(urlsplit(response["Location"]).query))
    assert params["vnp_ResponseCode"] == "00"
    assert Notification.objects.count() == 1
    page = _open(client, payment).content.decode()
    assert "already processed" in page or "đã được xử lý" in page


def test_approving_after_the_window_closed_times_the_payment_out():
    payment = redirect_payment()
    tx = bank.transaction_open(
        dict(parse_qsl(urlsplit(payment.provider_data["redirect_url"]).query))
    )
    later = protocol.read_stamp(tx.expire_date) + datetime.timedelta(seconds=1)
    tx = bank.transaction_decide(transaction_id=tx.pk, approve=True, now=later)
    assert tx.state == BankTransaction.State.DECLINED and tx.response_code == "11"


def test_a_malformed_decision_is_refused(client):
    payment = redirect_payment()
    _open(client, payment)
    tx = BankTransaction.objects.get()
    assert _decide(client, tx, "maybe").status_code == 400
    assert client.post("/sandbox/paymentv2/decide/", {"transaction": "nope"}).status_code == 404
    assert Notification.objects.count() == 0


def test_the_back_office_lists_payments_and_the_outbox(client):
    payment = redirect_payment()
    _open(client, payment)
    _decide(client, BankTransaction.objects.get(), "approve", ipn="delay")
    page = client.get("/sandbox/").content.decode()
    assert payment.reference in page
    notification = Notification.objects.get()
    before = notification.next_attempt_at
    client.post(f"/sandbox/outbox/{notification.pk}/send/")
    notification.refresh_from_db()
    assert notification.next_attempt_at < before
