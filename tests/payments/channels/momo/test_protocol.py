"""MoMo's signatures over public vectors, and every resultCode mapped to what it means for us.

MoMo publishes its sandbox credentials (partnerCode MOMO, accessKey F8BBA842ECF85, secretKey
K951B6PE1waDMi640xX08PD3vg6EkVlz, in momo-wallet/payment) and the order of the signed fields
(docs/protocols.md §4), but no signed example made with them: each expected signature below was
computed with `openssl dgst -sha256 -hmac <secretKey>` over the raw string written out here, so
neither side of the comparison is this project's Python.
"""

from __future__ import annotations

import pytest

from payments.channels.common.results import Result
from payments.channels.momo import protocol as momo
from sandbox import momo as sandbox_momo

PUBLIC = momo.Config(
    partner_code="MOMO",
    access_key="F8BBA842ECF85",
    secret_key="K951B6PE1waDMi640xX08PD3vg6EkVlz",
    api_url="https://test-payment.momo.vn",
)
HOOK = "https://webhook.site/b3088a6a-2d17-4f8d-a383-71389a6c600b"
CREATE_RAW = (
    f"accessKey=F8BBA842ECF85&amount=50000&extraData=&ipnUrl={HOOK}&orderId=MOMO1716257871703"
    f"&orderInfo=pay with MoMo&partnerCode=MOMO&redirectUrl={HOOK}&requestId=MOMO1716257871703"
    "&requestType=captureWallet"
)
CREATE_SIGNATURE = "123ebfc1b044fbfab2f14f20e86795de701954d8eb809f41ede2f5e74b8e64fd"
IPN = {
    "partnerCode": "MOMO",
    "orderId": "MOMO1716257871703",
    "requestId": "MOMO1716257871703",
    "amount": 50000,
    "orderInfo": "pay with MoMo",
    "orderType": "momo_wallet",
    "transId": 4088878653,
    "resultCode": 0,
    "message": "Successful.",
    "payType": "qr",
    "responseTime": 1716257931703,
    "extraData": "",
    "signature": "84d84516d7dbfd6f6e57f5e134c667ad26428c30f571c8cdf3843e5545075c38",
}
QUERY_SIGNATURE = "74635246cbd9e315e91e4ae516d24b516a67b0d23501c28357fac77e2c0ff230"


def _create() -> dict:
    return momo.create_request(
        PUBLIC,
        request_id="MOMO1716257871703",
        order_id="MOMO1716257871703",
        amount=50000,
        order_info="pay with MoMo",
        redirect_url=HOOK,
        ipn_url=HOOK,
        lang="vi",
    )


def test_the_create_request_is_signed_over_the_documented_string():
    body = _create()
    assert momo.raw(body, momo.CREATE_FIELDS, PUBLIC.access_key) == CREATE_RAW
    assert body["signature"] == CREATE_SIGNATURE
    assert body["requestType"] == "captureWallet" and body["amount"] == 50000
    assert "accessKey" not in body  # signed, never sent


def test_an_ipn_verifies_over_its_values_as_received():
    assert momo.verify_result(IPN, PUBLIC)
    assert momo.verify_result({**IPN, "signature": IPN["signature"].upper()}, PUBLIC)
    # The amount as MoMo sent it: 50000 and "50000" sign the same; 50000.0 does not.
    assert momo.verify_result({**IPN, "amount": "50000"}, PUBLIC)
    assert not momo.verify_result({**IPN, "amount": 50000.0}, PUBLIC)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 5000},
        {"resultCode": 1006},
        {"orderId": "MOMO1716257871704"},
        {"transId": 1},
        {"signature": ""},
        {"signature": "ü" * 64},
        {"signature": None},
        {"signature": ["84d8"]},
    ],
)
def test_a_changed_ipn_does_not_verify(change):
    assert not momo.verify_result({**IPN, **change}, PUBLIC)
    assert not momo.verify_result(IPN, momo.Config("MOMO", "F8BBA842ECF85", "other", ""))
    assert not momo.verify_result(IPN, momo.Config("MOMO", "F8BBA842ECF85", "", ""))


def test_the_status_query_is_signed_over_its_four_fields():
    body = momo.query_request(PUBLIC, request_id="MOMO1716257871704", order_id="MOMO1716257871703")
    assert body["signature"] == QUERY_SIGNATURE
    assert set(body) == {"partnerCode", "requestId", "orderId", "lang", "signature"}


def test_the_sandbox_signs_as_the_portal_does_with_code_of_its_own():
    shop = sandbox_momo.Merchant("MOMO", "F8BBA842ECF85", "K951B6PE1waDMi640xX08PD3vg6EkVlz")
    assert sandbox_momo.signature(_create(), sandbox_momo.CREATE_SIGNED, shop) == CREATE_SIGNATURE
    assert sandbox_momo.signature(IPN, sandbox_momo.RESULT_SIGNED, shop) == IPN["signature"]


@pytest.mark.parametrize(("code", "entry"), sorted(momo.RESULT_CODES.items()))
def test_every_result_code_has_its_meaning_and_what_it_means_for_the_payment(code, entry):
    meaning, result = entry
    assert momo.result_of(code) is result and momo.meaning(code) == meaning
    if result is None:
        assert code < 1000  # about the request, never the payment
    if code == 0:
        assert result is Result.SUCCESS
    # Money may still move for these: never a failure.
    if code in (1000, 7000, 7002, 8000, 9000):
        assert result is Result.PENDING


@pytest.mark.parametrize(
    ("code", "result"),
    [(1999, Result.FAILED), (4999, Result.FAILED), (5000, Result.REVIEW), (None, Result.REVIEW)],
)
def test_codes_missing_from_the_table_follow_the_series(code, result):
    assert momo.result_of(code) is result and momo.meaning(code) == "unknown code"


def test_the_create_refusals_that_leave_no_order_are_request_codes():
    assert {code for code, (_m, r) in momo.RESULT_CODES.items() if r is None} >= momo.NOT_CREATED
    # A duplicate, a transaction in progress or an unknown error may hide an open order.
    assert not {40, 41, 43, 99} & momo.NOT_CREATED


@pytest.mark.parametrize(("value", "amount"), [(50000, 50000), ("50000", 50000), (0, 0)])
def test_amounts_are_whole_dong(value, amount):
    assert momo.parse_amount(value) == amount


@pytest.mark.parametrize("value", [50000.0, "50000.5", "-1", -1, True, None, "5e4", "５"])
def test_anything_else_is_not_an_amount(value):
    with pytest.raises(ValueError):
        momo.parse_amount(value)


@pytest.mark.parametrize(
    ("value", "code"), [(0, 0), ("1006", 1006), ("-1", -1), (True, None), ("x", None), (None, None)]
)
def test_result_codes_are_read_from_json_and_query_strings(value, code):
    assert momo.result_code(value) == code


def test_an_amount_that_is_not_whole_dong_is_never_sent():
    with pytest.raises(ValueError):
        momo.create_request(
            PUBLIC, request_id="r", order_id="o", amount=0, order_info="", redirect_url="",
            ipn_url="", lang="vi",
        )  # fmt: skip
