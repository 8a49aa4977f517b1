"""The sandbox bank's status query (querydr): what it answers, always signed."""

from __future__ import annotations

import datetime
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from payments.channels.vnpay import protocol as vnpay
from sandbox import bank
from sandbox.models import BankTransaction
from tests.sandbox.support import redirect_payment

pytestmark = pytest.mark.django_db
URL = "/sandbox/merchant_webapi/api/transaction"


def _config():
    credentials = django_settings.PARTNER_CREDENTIALS["SANDBOX"]
    return vnpay.GatewayConfig(credentials["tmn_code"], credentials["secret"], "", "")


def _query(payment, **overrides):
    body = vnpay.build_query_request(
        _config(),
        request_id=vnpay.new_request_id(),
        txn_ref=payment.reference,
        order_info="status",
        transaction_date=payment.provider_data["vnp_CreateDate"],
        created_at=timezone.now(),
        ip_address="127.0.0.1",
    )
    return {**body, **overrides}


def _ask(client, body):
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    answer = response.json()
    assert vnpay.verify_query_response(answer, _config().secret), answer
    return answer


def _open(payment):
    return bank.transaction_open(
        dict(parse_qsl(urlsplit(payment.provider_data["redirect_url"]).query))
    )


def test_it_reports_an_open_payment_as_not_completed(client):
    payment = redirect_payment()
    _open(payment)
    answer = _ask(client, _query(payment))
    assert answer["vnp_ResponseCode"] == "00" and answer["vnp_TransactionStatus"] == "01"
    assert answer["vnp_TxnRef"] == payment.reference and answer["vnp_TmnCode"] == "EVNHT001"


def test_it_reports_approved_and_declined_payments_with_their_amount(client):
    approved, declined = redirect_payment(amounts=[452_160]), redirect_payment()
    bank.transaction_decide(transaction_id=_open(approved).pk, approve=True)
    bank.transaction_decide(transaction_id=_open(declined).pk, approve=False, decline_code="51")
    answer = _ask(client, _query(approved))
    assert answer["vnp_TransactionStatus"] == "00" and answer["vnp_Amount"] == "45216000"
    assert (
        answer["vnp_TransactionNo"]
        == BankTransaction.objects.get(txn_ref=approved.reference).transaction_no
    )
    assert vnpay.query_result(answer) is vnpay.Result.SUCCESS
    answer = _ask(client, _query(declined))
    assert answer["vnp_TransactionStatus"] == "02"
    assert vnpay.query_result(answer) is vnpay.Result.FAILED


def test_it_does_not_know_a_payment_it_never_saw_or_another_days_one(client):
    payment = redirect_payment()
    assert _ask(client, _query(payment))["vnp_ResponseCode"] == "91"
    _open(payment)
    other_day = _query(payment, vnp_TransactionDate="20200101000000")
    body = vnpay.build_query_request(
        _config(),
        request_id=vnpay.new_request_id(),
        txn_ref=payment.reference,
        order_info="status",
        transaction_date="20200101000000",
        created_at=timezone.now(),
        ip_address="127.0.0.1",
    )
    assert other_day["vnp_TransactionDate"] == body["vnp_TransactionDate"]
    assert _ask(client, body)["vnp_ResponseCode"] == "91"


def test_it_refuses_a_bad_checksum_a_wrong_terminal_and_a_repeated_request(client):
    payment = redirect_payment()
    _open(payment)
    assert _ask(client, _query(payment, vnp_SecureHash="0" * 128))["vnp_ResponseCode"] == "97"
    assert _ask(client, _query(payment, vnp_TxnRef="EVNOTHER"))["vnp_ResponseCode"] == "97"
    assert _ask(client, _query(payment, vnp_TmnCode="OTHERTMN"))["vnp_ResponseCode"] == "02"
    once = _query(payment)
    assert _ask(client, once)["vnp_ResponseCode"] == "00"
    assert _ask(client, once)["vnp_ResponseCode"] == "94"


@pytest.mark.parametrize("body", [None, [], "x", {"vnp_Command": "querydr"}])
def test_it_answers_a_malformed_request_with_03(client, body):
    response = client.post(URL, data=json.dumps(body), content_type="application/json")
    assert response.json()["vnp_ResponseCode"] == "03"


def test_it_answers_broken_json_with_03(client):
    response = client.post(URL, data=b"{not json", content_type="application/json")
    assert response.json()["vnp_ResponseCode"] == "03"


def test_request_ids_are_unique_per_day_only():
    payment = redirect_payment()
    _open(payment)
    body = _query(payment)
    today = timezone.now()
    assert bank.query_answer(body, now=today)["vnp_ResponseCode"] == "00"
    assert bank.query_answer(body, now=today)["vnp_ResponseCode"] == "94"
    tomorrow = today + datetime.timedelta(days=1)
    assert bank.query_answer(body, now=tomorrow)["vnp_ResponseCode"] == "00"


def test_only_post_is_served(client):
    assert client.get(URL).status_code == 405


def test_a_body_nested_beyond_the_parser_gets_a_signed_refusal_not_a_500(client):
    response = client.post(URL, data="[" * 100_000, content_type="application/json")
    assert response.status_code == 200
    assert vnpay.verify_query_response(response.json(), _config().secret)
