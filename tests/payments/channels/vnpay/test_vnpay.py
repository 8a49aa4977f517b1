"""The VNPay 2.1.0 protocol as pure functions: the public vector, signing traps, time, querydr."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import time
from urllib.parse import parse_qsl, quote_plus, urlsplit
from zoneinfo import ZoneInfo

import pytest

from payments.channels.vnpay import protocol as vnpay

UTC = datetime.UTC
# docs/protocols.md §2: the vector every implementation must reproduce.
VECTOR_SECRET = "test_secret"
VECTOR_STRING = (
    "vnp_Amount=1000000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14422574&vnp_CardType=ATM"
    "&vnp_OrderInfo=Thanh+toan+don+hang+2024-05-21T02%3A17%3A31.249Z&vnp_PayDate=20240521091806"
    "&vnp_ResponseCode=00&vnp_TmnCode=TEST_TMN_CODE&vnp_TransactionNo=14422574"
    "&vnp_TransactionStatus=00&vnp_TxnRef=1716257871703"
)
VECTOR_HASH = (
    "649982421beb422556a1374713c74e58e716ecbd05007c0c0e1f7effdfaf361d"
    "bf146889ca446139afe11b9954c4d5c486e99e3b86fcfab6957f29eb0be72895"
)
VECTOR_PARAMS = {
    "vnp_Amount": "1000000",
    "vnp_BankCode": "NCB",
    "vnp_BankTranNo": "VNP14422574",
    "vnp_CardType": "ATM",
    "vnp_OrderInfo": "Thanh toan don hang 2024-05-21T02:17:31.249Z",
    "vnp_PayDate": "20240521091806",
    "vnp_ResponseCode": "00",
    "vnp_TmnCode": "TEST_TMN_CODE",
    "vnp_TransactionNo": "14422574",
    "vnp_TransactionStatus": "00",
    "vnp_TxnRef": "1716257871703",
}
CONFIG = vnpay.GatewayConfig(
    tmn_code="EVNHT001",
    secret="s3cret-for-tests",
    pay_url="https://bank.example/paymentv2/vpcpay.html",
    api_url="https://bank.example/merchant_webapi/api/transaction",
)


def _pay_url(**overrides):
    arguments = {
        "txn_ref": "EVNABCDEFGH2",
        "amount": 452_160,
        "order_info": "Thanh toan tien dien PA14HT0000001 EVNABCDEFGH2",
        "return_url": "https://portal.example/pay/return/SANDBOX/",
        "ip_address": "203.0.113.9",
        "created_at": datetime.datetime(2026, 1, 31, 20, 30, 5, tzinfo=UTC),
        "expires_at": datetime.datetime(2026, 1, 31, 20, 45, 5, tzinfo=UTC),
        **overrides,
    }
    return vnpay.build_pay_url(CONFIG, **arguments)


def _query(url):
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


# --- The vector -----------------------------------------------------------------------------
def test_the_string_to_sign_of_the_vector_is_reproduced():
    assert vnpay.string_to_sign(VECTOR_PARAMS) == VECTOR_STRING


def test_the_vector_signs_to_the_published_hash():
    assert vnpay.sign(VECTOR_PARAMS, VECTOR_SECRET) == VECTOR_HASH
    # ...and the published hash is plain HMAC-SHA512 of the published string.
    assert hmac.new(b"test_secret", VECTOR_STRING.encode(), hashlib.sha512).hexdigest() == (
        VECTOR_HASH
    )


def test_the_vector_verifies_as_received_with_the_hash_and_its_type_left_out():
    received = {**VECTOR_PARAMS, "vnp_SecureHash": VECTOR_HASH, "vnp_SecureHashType": "HmacSHA512"}
    assert vnpay.verify(received, VECTOR_SECRET)
    assert vnpay.verify({**received, "vnp_SecureHash": VECTOR_HASH.upper()}, VECTOR_SECRET)


@pytest.mark.parametrize(
    "field, value",
    [
        ("vnp_Amount", "1000100"),
        ("vnp_ResponseCode", "24"),
        ("vnp_TxnRef", "1716257871704"),
        ("vnp_OrderInfo", "Thanh toan don hang 2024-05-21T02:17:31.249Z "),
        ("vnp_Extra", "added by someone"),
    ],
)
def test_it_rejects_a_tampered_message(field, value):
    tampered = {**VECTOR_PARAMS, field: value, "vnp_SecureHash": VECTOR_HASH}
    assert not vnpay.verify(tampered, VECTOR_SECRET)


def test_it_rejects_a_tampered_signature_a_missing_one_and_a_wrong_secret():
    received = {**VECTOR_PARAMS, "vnp_SecureHash": VECTOR_HASH}
    assert not vnpay.verify({**received, "vnp_SecureHash": VECTOR_HASH[:-1] + "0"}, VECTOR_SECRET)
    assert not vnpay.verify({**received, "vnp_SecureHash": ""}, VECTOR_SECRET)
    assert not vnpay.verify(VECTOR_PARAMS, VECTOR_SECRET)
    assert not vnpay.verify({**received, "vnp_SecureHash": "ü" * 128}, VECTOR_SECRET)
    assert not vnpay.verify(received, "another_secret")
    assert not vnpay.verify(received, "")


def test_parameters_that_are_not_vnp_fields_are_not_signed():
    received = {**VECTOR_PARAMS, "vnp_SecureHash": VECTOR_HASH, "lang": "en", "utm": "x"}
    assert vnpay.verify(received, VECTOR_SECRET)


def test_a_rescaled_amount_does_not_verify():
    # The trap: hashing the amount we parsed (10000 VND) instead of the received "1000000".
    rescaled = {**VECTOR_PARAMS, "vnp_Amount": "10000", "vnp_SecureHash": VECTOR_HASH}
    assert not vnpay.verify(rescaled, VECTOR_SECRET)


# --- The pay URL ----------------------------------------------------------------------------
def test_the_pay_url_carries_the_amount_times_100_and_a_valid_signature():
    params = _query(_pay_url())
    assert params["vnp_Amount"] == "45216000"
    assert params["vnp_Version"] == "2.1.0" and params["vnp_Command"] == "pay"
    assert params["vnp_CurrCode"] == "VND" and params["vnp_OrderType"] == "billpayment"
    assert params["vnp_TmnCode"] == "EVNHT001" and params["vnp_TxnRef"] == "EVNABCDEFGH2"
    assert params["vnp_IpAddr"] == "203.0.113.9" and params["vnp_Locale"] == "vn"
    assert "vnp_SecureHashType" not in params and "vnp_BankCode" not in params
    assert vnpay.verify(params, CONFIG.secret)


def test_the_pay_url_is_the_signed_string_encoded_with_quote_plus():
    url = _pay_url()
    query = urlsplit(url).query
    signed, _, signature = query.rpartition("&vnp_SecureHash=")
    assert signature == vnpay.sign(_query(url), CONFIG.secret)
    assert "vnp_ReturnUrl=https%3A%2F%2Fportal.example%2Fpay%2Freturn%2FSANDBOX%2F" in signed
    assert "vnp_OrderInfo=Thanh+toan+tien+dien+PA14HT0000001+EVNABCDEFGH2" in signed
    names = [pair.split("=", 1)[0] for pair in signed.split("&")]
    assert names == sorted(names)
    assert url.startswith(CONFIG.pay_url + "?")


def test_the_pay_url_keeps_a_pay_url_that_has_its_own_query():
    config = vnpay.GatewayConfig("EVNHT001", "s", "https://bank.example/pay?channel=web", "")
    url = vnpay.build_pay_url(
        config,
        txn_ref="EVNX",
        amount=1,
        order_info="x",
        return_url="https://p.example/",
        ip_address="127.0.0.1",
        created_at=datetime.datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime.datetime(2026, 1, 1, 0, 15, tzinfo=UTC),
    )
    assert url.startswith("https://bank.example/pay?channel=web&vnp_Amount=100&")


def test_the_pay_url_asks_for_english_or_vietnamese_and_a_bank_when_told():
    params = _query(_pay_url(locale="en", bank_code="NCB"))
    assert params["vnp_Locale"] == "en" and params["vnp_BankCode"] == "NCB"
    assert _query(_pay_url(locale="fr"))["vnp_Locale"] == "vn"


@pytest.mark.parametrize("amount", [0, -5, 1.5, True])
def test_the_pay_url_refuses_an_amount_that_is_not_a_positive_whole_number_of_dong(amount):
    with pytest.raises(ValueError):
        _pay_url(amount=amount)


@pytest.fixture
def server_in_new_york(settings):
    """The server's clock and Django's zone set to New York, as some servers are.

    Django applies a changed TIME_ZONE to the process (TZ and time.tzset()), and restores it.
    """
    settings.TIME_ZONE = "America/New_York"
    yield
    # The settings fixture restores TIME_ZONE (and so the process zone) after the test.


def test_timestamps_are_gmt7_whatever_the_servers_zone(server_in_new_york):
    assert time.localtime(0).tm_hour == 19  # really running in New York's zone
    assert os.environ["TZ"] == "America/New_York"
    params = _query(_pay_url())
    # 20:30:05 UTC on 31 January is 03:30:05 on 1 February in Hà Nội.
    assert params["vnp_CreateDate"] == "20260201033005"
    assert params["vnp_ExpireDate"] == "20260201034505"
    new_york = datetime.datetime(2026, 1, 31, 15, 30, 5, tzinfo=ZoneInfo("America/New_York"))
    assert vnpay.format_time(new_york) == "20260201033005"


def test_naive_times_are_refused_rather_than_guessed():
    with pytest.raises(ValueError):
        vnpay.format_time(datetime.datetime(2026, 1, 31, 20, 30))


def test_protocol_times_read_back_as_gmt7():
    moment = vnpay.parse_time("20260201033005")
    assert moment == datetime.datetime(2026, 1, 31, 20, 30, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        vnpay.parse_time("2026-02-01")


@pytest.mark.parametrize(
    "text, expected",
    [("45216000", 452_160), ("100", 1), ("0", 0)],
)
def test_amounts_read_as_whole_dong(text, expected):
    assert vnpay.parse_amount(text) == expected


@pytest.mark.parametrize("text", ["", "45216050", "-100", "1e5", "452.160", " 100", "١٠٠"])
def test_amounts_that_are_not_whole_dong_are_refused(text):
    with pytest.raises(ValueError):
        vnpay.parse_amount(text)


# --- querydr --------------------------------------------------------------------------------
def test_a_querydr_request_is_signed_over_the_piped_fields_in_protocol_order():
    body = vnpay.build_query_request(
        CONFIG,
        request_id="a" * 32,
        txn_ref="EVNABCDEFGH2",
        order_info="Thanh toan tien dien",
        transaction_date="20260201033005",
        created_at=datetime.datetime(2026, 1, 31, 21, 0, 0, tzinfo=UTC),
        ip_address="10.0.0.1",
    )
    piped = "|".join(
        [
            "a" * 32,
            "2.1.0",
            "querydr",
            "EVNHT001",
            "EVNABCDEFGH2",
            "20260201033005",
            "20260201040000",
            "10.0.0.1",
            "Thanh toan tien dien",
        ]
    )
    expected = hmac.new(CONFIG.secret.encode(), piped.encode(), hashlib.sha512).hexdigest()
    assert body["vnp_SecureHash"] == expected
    assert body["vnp_CreateDate"] == "20260201040000"
    assert "vnp_TransactionNo" not in body


def test_a_querydr_request_may_name_the_banks_transaction_without_changing_the_signed_fields():
    arguments = {
        "request_id": "r1",
        "txn_ref": "EVNA",
        "order_info": "x",
        "transaction_date": "20260201033005",
        "created_at": datetime.datetime(2026, 1, 31, 21, 0, 0, tzinfo=UTC),
        "ip_address": "10.0.0.1",
    }
    plain = vnpay.build_query_request(CONFIG, **arguments)
    named = vnpay.build_query_request(CONFIG, transaction_no="14422574", **arguments)
    assert named["vnp_TransactionNo"] == "14422574"
    assert named["vnp_SecureHash"] == plain["vnp_SecureHash"]


def _signed_answer(**fields):
    body = {
        "vnp_ResponseId": "b" * 32,
        "vnp_Command": "querydr",
        "vnp_ResponseCode": "00",
        "vnp_Message": "Request processed successfully",
        "vnp_TmnCode": "EVNHT001",
        "vnp_TxnRef": "EVNABCDEFGH2",
        "vnp_Amount": "45216000",
        "vnp_BankCode": "NCB",
        "vnp_PayDate": "20260201033500",
        "vnp_TransactionNo": "14422574",
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": "00",
        "vnp_OrderInfo": "Thanh toan tien dien",
        **fields,
    }
    piped = "|".join(str(body.get(name, "")) for name in vnpay.QUERY_RESPONSE_FIELDS)
    body["vnp_SecureHash"] = hmac.new(
        CONFIG.secret.encode(), piped.encode(), hashlib.sha512
    ).hexdigest()
    return body


def test_a_querydr_answer_verifies_with_missing_fields_as_empty_strings():
    answer = _signed_answer()
    assert "vnp_PromotionCode" not in answer
    assert vnpay.verify_query_response(answer, CONFIG.secret)
    assert vnpay.verify_query_response({**answer, "vnp_PromotionCode": ""}, CONFIG.secret)


def test_a_querydr_answer_with_numbers_verifies_like_their_text():
    answer = _signed_answer(vnp_PromotionAmount="0")
    assert vnpay.verify_query_response({**answer, "vnp_PromotionAmount": 0}, CONFIG.secret)


@pytest.mark.parametrize(
    "field, value",
    [("vnp_TransactionStatus", "02"), ("vnp_Amount", "100"), ("vnp_SecureHash", "0" * 128)],
)
def test_a_tampered_querydr_answer_does_not_verify(field, value):
    assert not vnpay.verify_query_response({**_signed_answer(), field: value}, CONFIG.secret)
    assert not vnpay.verify_query_response(_signed_answer(), "")


def test_querydr_answers_are_read_only_when_the_query_itself_succeeded():
    assert vnpay.query_result(_signed_answer()) is vnpay.Result.SUCCESS
    assert vnpay.query_result(_signed_answer(vnp_TransactionStatus="01")) is vnpay.Result.PENDING
    assert vnpay.query_result(_signed_answer(vnp_TransactionStatus="02")) is vnpay.Result.FAILED
    assert vnpay.query_result(_signed_answer(vnp_TransactionStatus="07")) is vnpay.Result.REVIEW
    assert vnpay.query_result(_signed_answer(vnp_ResponseCode="91")) is None
    assert vnpay.query_result(_signed_answer(vnp_ResponseCode="94")) is None


@pytest.mark.parametrize(
    "response_code, status, expected",
    [
        ("00", "00", vnpay.Result.SUCCESS),
        ("24", "02", vnpay.Result.FAILED),
        ("51", "02", vnpay.Result.FAILED),
        ("11", "", vnpay.Result.FAILED),
        ("07", "00", vnpay.Result.REVIEW),
        ("00", "04", vnpay.Result.REVIEW),
        ("00", "01", vnpay.Result.PENDING),
        ("00", "", vnpay.Result.REVIEW),
        ("", "", vnpay.Result.REVIEW),
    ],
)
def test_reports_are_classified_without_ever_calling_a_doubt_a_failure(
    response_code, status, expected
):
    assert vnpay.transaction_result(response_code, status) is expected


def test_request_ids_fit_the_protocol_and_do_not_repeat():
    ids = {vnpay.new_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) <= 32 for i in ids)


def test_quote_plus_is_what_the_protocol_means_by_encoding():
    # The facts docs/protocols.md states about the encoding, checked against the function we use.
    assert quote_plus("a b:c/d") == "a+b%3Ac%2Fd"
