"""ZaloPay's MACs over public vectors, its answer codes, and its order ids.

The callback vector is ZaloPay's own (its documentation's sample callback for the public sandbox
app 2553, verified with that app's published KEY2). ZaloPay publishes that app's KEY1 too, but
no signed create or query made with it: those expected MACs were computed with
`openssl dgst -sha256 -hmac <key>` over the strings written out here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from payments.channels.common.results import Result
from payments.channels.zalopay import protocol as zalopay
from sandbox import zalopay as sandbox_zalopay

PUBLIC = zalopay.Config(
    app_id="2553",
    key1="PcY4iZIKFCIdgZvA6ueMcMHHUbRLYjPL",
    key2="kLtgPl8HHhfvMuDHPwKfgfsY4Ydm9eIz",
    api_url="https://sb-openapi.zalopay.vn",
)
# ZaloPay's documented sample callback, byte for byte.
CALLBACK = (
    '{"data":"{\\"app_id\\":2553,\\"app_trans_id\\":\\"200904_2553_1598435687208\\",\\"app_time'
    '\\":1599189392817,\\"app_user\\":\\"demo\\",\\"amount\\":10000,\\"embed_data\\":\\"{\\\\\\"'
    'merchantinfo\\\\\\":\\\\\\"embeddata123\\\\\\",\\\\\\"promotioninfo\\\\\\":\\\\\\"\\\\\\"}\\",'
    '\\"item\\":\\"[{\\\\\\"itemid\\\\\\":\\\\\\"knb\\\\\\",\\\\\\"itemname\\\\\\":\\\\\\"kim nguy'
    'en bao\\\\\\",\\\\\\"itemprice\\\\\\":198400,\\\\\\"itemquantity\\\\\\":1}]\\",\\"zp_trans_i'
    'd\\":200904000000389,\\"server_time\\":1599189413498,\\"channel\\":38,\\"merchant_user_id'
    '\\":\\"7ZMSl3nEg5sOUJzOLSoUFT8xKNQVaLOLXHB--8Eytqc\\",\\"user_fee_amount\\":0,\\"discount_'
    'amount\\":0}","mac":"d8d33baf449b31d7f9b94fa50d7c942c08cd4d83f28fa185557da21acb104f67","typ'
    'e":1}'
)
REDIRECT = "https://portal.example/pay/return/ZALOPAY/"
CREATE_MAC = "8fbdd440b4161bf67e0fba01dec541ee9f0e6788156d5e9083bce55a9184f6dd"
QUERY_MAC = "a9ce35c8500c7f778dcf3202c5471733bc72378d06c9c07e98755d36103833de"
RETURN = {
    "appid": "2553",
    "apptransid": "240521_EVN2K7Q9M4XC",
    "pmcid": "38",
    "bankcode": "",
    "amount": "452160",
    "discountamount": "0",
    "status": "1",
    "checksum": "45e1e87ebd0404a42f1462a6b1604b3351f809d700c600723cbef7f0cabd4cde",
}


def test_zaloPays_own_sample_callback_verifies_over_its_data_as_received():
    body = json.loads(CALLBACK)
    assert zalopay.verify_callback(body["data"], body["mac"], PUBLIC)
    # The data string exactly as received: the same JSON written another way does not verify.
    rewritten = json.dumps(json.loads(body["data"]))
    assert not zalopay.verify_callback(rewritten, body["mac"], PUBLIC)
    assert not zalopay.verify_callback(body["data"].replace("10000", "1000"), body["mac"], PUBLIC)
    # KEY2 verifies callbacks; KEY1 does not.
    key1_only = zalopay.Config("2553", PUBLIC.key1, PUBLIC.key1, "")
    assert not zalopay.verify_callback(body["data"], body["mac"], key1_only)
    assert not zalopay.verify_callback(json.loads(body["data"]), body["mac"], PUBLIC)


def test_the_create_request_is_signed_with_key1_over_the_documented_order():
    body = zalopay.create_request(
        PUBLIC,
        app_trans_id="240521_EVN2K7Q9M4XC",
        app_user="PA14HT0012345",
        app_time=1716257871703,
        amount=452160,
        description="Thanh toan tien dien PA14HT0012345 EVN2K7Q9M4XC",
        callback_url="https://portal.example/callbacks/zalopay/callback/",
        redirect_url=REDIRECT,
        expire_seconds=900,
    )
    assert zalopay.piped(body, zalopay.CREATE_MAC_FIELDS) == (
        f'2553|240521_EVN2K7Q9M4XC|PA14HT0012345|452160|1716257871703|{{"redirecturl":"{REDIRECT}"}}|[]'
    )
    assert body["mac"] == CREATE_MAC
    assert body["expire_duration_seconds"] == "900" and body["amount"] == "452160"


def test_the_status_query_is_signed_with_key1_over_app_id_app_trans_id_and_key1():
    body = zalopay.query_request(PUBLIC, app_trans_id="240521_EVN2K7Q9M4XC")
    assert body == {"app_id": "2553", "app_trans_id": "240521_EVN2K7Q9M4XC", "mac": QUERY_MAC}


def test_the_browser_return_is_checked_with_key2():
    assert zalopay.verify_return(RETURN, PUBLIC)
    assert not zalopay.verify_return({**RETURN, "status": "-1"}, PUBLIC)
    assert not zalopay.verify_return({**RETURN, "amount": "1"}, PUBLIC)
    assert not zalopay.verify_return({**RETURN, "checksum": ""}, PUBLIC)


def test_the_sandbox_makes_the_same_macs_with_code_of_its_own():
    body = json.loads(CALLBACK)
    assert sandbox_zalopay.mac(PUBLIC.key2, body["data"]) == body["mac"]
    assert sandbox_zalopay.mac(PUBLIC.key1, f"2553|240521_EVN2K7Q9M4XC|{PUBLIC.key1}") == QUERY_MAC


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # 16:59:59 UTC is 23:59:59 in Vietnam; 17:00 is the next day there.
        (datetime(2026, 2, 1, 16, 59, 59, tzinfo=UTC), "260201_EVN2K7Q9M4XC"),
        (datetime(2026, 2, 1, 17, 0, 0, tzinfo=UTC), "260202_EVN2K7Q9M4XC"),
    ],
)
def test_app_trans_id_is_the_vietnamese_date_and_our_reference(moment, expected):
    assert zalopay.app_trans_id("EVN2K7Q9M4XC", moment) == expected
    assert zalopay.reference_of(expected) == "EVN2K7Q9M4XC"


@pytest.mark.parametrize(
    "value", ["EVN2K7Q9M4XC", "20904_EVN2", "260201-EVN2", "260201_", "260201_EVN 2", None, 260201]
)
def test_an_app_trans_id_that_is_not_ours_names_no_reference(value):
    assert zalopay.reference_of(value) == ""


def test_an_aware_moment_is_required():
    with pytest.raises(ValueError):
        zalopay.app_trans_id("EVN2K7Q9M4XC", datetime(2026, 2, 1))


@pytest.mark.parametrize(("code", "entry"), sorted(zalopay.QUERY_CODES.items()))
def test_every_status_answer_code_maps_to_what_it_means(code, entry):
    _meaning, result = entry
    assert zalopay.query_result({"return_code": code}) is result


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        ({"return_code": 1, "amount": 10000}, Result.SUCCESS),
        ({"return_code": "2"}, Result.FAILED),
        ({"return_code": 3, "is_processing": True}, Result.PENDING),
        ({"return_code": 2, "is_processing": True}, Result.PENDING),
        ({"return_code": 2, "sub_return_code": -101}, None),  # no such order yet
        ({"return_code": 2, "sub_return_code": -402}, None),  # our MAC refused: says nothing
        ({"return_code": 2, "sub_return_code": -503}, None),
        ({"return_code": 0}, None),
        ({"return_code": -1}, None),
        ({}, None),
    ],
)
def test_a_status_answer_fails_a_payment_only_on_a_definite_no(answer, result):
    assert zalopay.query_result(answer) is result


def test_the_callback_answers_are_zaloPays_codes():
    assert zalopay.ANSWER_SUCCESS[0] == 1 and zalopay.ANSWER_ALREADY[0] == 2
    assert zalopay.ANSWER_BAD_MAC[0] == -1 and zalopay.ANSWER_RETRY[0] == 0
    # ZaloPay has no code for an unknown order or a wrong amount: received, kept.
    assert zalopay.ANSWER_NOT_FOUND[0] == zalopay.ANSWER_WRONG_AMOUNT[0] == 1
    assert zalopay.CREATE_REFUSED <= zalopay.QUERY_SAYS_NOTHING
