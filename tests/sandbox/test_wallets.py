"""The sandbox's MoMo and ZaloPay: what they check on a create, their pay pages, the
notifications their outbox sends until acknowledged, and their status answers."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client

from payments.models import InboundMessage, Payment
from sandbox import delivery, momo, zalopay
from sandbox.models import Notification, WalletOrder
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    MOMO,
    ZALOPAY,
    wallets,  # noqa: F401 - fixture
    wallets_on_live_server,  # noqa: F401 - fixture
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wallets")]
transactional = pytest.mark.django_db(transaction=True)
BASE = "http://testserver"
HOOK = "https://portal.example/callbacks/momo/ipn/"


def _momo_create(**change) -> dict:
    shop = momo.merchant()
    body = {
        "partnerCode": MOMO["partner_code"],
        "requestId": "req-1",
        "amount": 452_160,
        "orderId": "EVN2K7Q9M4XC",
        "orderInfo": "Thanh toan tien dien",
        "redirectUrl": "https://portal.example/pay/return/MOMO/",
        "ipnUrl": HOOK,
        "lang": "vi",
        "extraData": "",
        "requestType": "captureWallet",
    }
    body["signature"] = momo.signature(body, momo.CREATE_SIGNED, shop)
    return {**body, **change}


def test_momo_opens_one_order_per_order_id_and_repeats_itself_to_the_same_request():
    first = momo.create(_momo_create(), base_url=BASE)
    assert first["resultCode"] == 0 and first["payUrl"].startswith(f"{BASE}/sandbox/momo/pay/")
    assert first["deeplink"].startswith(f"{BASE}/sandbox/momo/app/")
    again = momo.create(_momo_create(), base_url=BASE)
    assert again["payUrl"] == first["payUrl"] and WalletOrder.objects.count() == 1
    other = _momo_create(requestId="req-2")
    other["signature"] = momo.signature(other, momo.CREATE_SIGNED, momo.merchant())
    assert momo.create(other, base_url=BASE)["resultCode"] == 41


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"signature": "0" * 64}, 13),
        ({"partnerCode": "SOMEONE"}, 11),
        ({"amount": 999}, 13),  # changed after signing
        ({"requestType": "payWithATM"}, 13),
    ],
)
def test_momo_refuses_what_the_merchant_did_not_sign(change, code):
    assert momo.create(_momo_create(**change), base_url=BASE)["resultCode"] == code
    assert not WalletOrder.objects.exists()


@pytest.mark.parametrize(
    ("change", "code"),
    [({"amount": 999}, 22), ({"amount": 50_000_001}, 22), ({"amount": "452160"}, 21),
     ({"orderId": "EVN 2K7"}, 20), ({"ipnUrl": "ftp://x"}, 20)],
)  # fmt: skip
def test_momo_refuses_a_signed_request_it_cannot_take(change, code):
    body = _momo_create(**change)
    body["signature"] = momo.signature(body, momo.CREATE_SIGNED, momo.merchant())
    assert momo.create(body, base_url=BASE)["resultCode"] == code


def test_momos_pay_page_and_app_show_the_order_and_decide_once(client: Client):
    answer = momo.create(_momo_create(), base_url=BASE)
    order = WalletOrder.objects.get()
    for url in (answer["payUrl"], answer["deeplink"]):
        page = client.get(urlsplit(url).path)
        assert page.status_code == 200 and "452.160 ₫" in page.content.decode()
        assert "form-action 'self' https://portal.example" in page["Content-Security-Policy"]
    decided = client.post(
        "/sandbox/momo/decide/", {"order": order.pk, "decision": "decline", "reason": "1001"}
    )
    back = urlsplit(decided["Location"])
    assert back.netloc == "portal.example" and back.path == "/pay/return/MOMO/"
    params = dict(parse_qsl(back.query))
    assert params["resultCode"] == "1001" and params["orderId"] == "EVN2K7Q9M4XC"
    assert momo.signed_by(params, momo.RESULT_SIGNED, momo.merchant())
    # A second decision changes nothing.
    client.post("/sandbox/momo/decide/", {"order": order.pk, "decision": "approve"})
    order.refresh_from_db()
    assert order.result_code == "1001" and Notification.objects.get().payload["resultCode"] == 1001


def test_momos_status_answer_follows_the_order():
    def ask(order_id: str = "EVN2K7Q9M4XC") -> dict:
        body = {"partnerCode": MOMO["partner_code"], "requestId": "q", "orderId": order_id}
        body["signature"] = momo.signature(body, momo.QUERY_SIGNED, momo.merchant())
        return momo.query(body)

    assert ask()["resultCode"] == 42
    momo.create(_momo_create(), base_url=BASE)
    assert ask()["resultCode"] == 1000
    order = momo.decide(order_id=WalletOrder.objects.get().pk, approve=True, ipn_mode="drop")
    answer = ask()
    assert answer["resultCode"] == 0 and answer["transId"] == int(order.trans_id)
    assert answer["amount"] == 452_160
    assert momo.query({**answer, "signature": "x"})["resultCode"] in (11, 13)


def _zalopay_create(**change) -> dict:
    from payments.channels.zalopay import protocol as portal_side

    config = portal_side.Config(ZALOPAY["app_id"], ZALOPAY["key1"], ZALOPAY["key2"], "")
    from django.utils import timezone

    body = portal_side.create_request(
        config,
        app_trans_id=portal_side.app_trans_id("EVN2K7Q9M4XC", timezone.now()),
        app_user="PA14HT0012345",
        app_time=1,
        amount=452_160,
        description="Thanh toan tien dien",
        callback_url="https://portal.example/callbacks/zalopay/callback/",
        redirect_url="https://portal.example/pay/return/ZALOPAY/",
    )
    return {**body, **change}


def test_zalopay_opens_one_order_per_app_trans_id():
    first = zalopay.create(_zalopay_create(), base_url=BASE)
    assert first["return_code"] == 1
    assert first["order_url"].startswith(f"{BASE}/sandbox/zalopay/openinapp?order=")
    assert zalopay.create(_zalopay_create(), base_url=BASE)["return_code"] == 2
    assert WalletOrder.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "sub_code"),
    [({"mac": "0" * 64}, -402), ({"app_id": "1"}, -402), ({"amount": "1"}, -402),
     ({"app_trans_id": "991231_EVN2K7Q9M4XC"}, -402)],
)  # fmt: skip
def test_zalopay_refuses_what_the_merchant_did_not_sign(change, sub_code):
    answer = zalopay.create(_zalopay_create(**change), base_url=BASE)
    assert (answer["return_code"], answer["sub_return_code"]) == (2, sub_code)


def test_zalopays_pay_page_approves_once_and_calls_back_only_when_paid(client: Client):
    zalopay.create(_zalopay_create(), base_url=BASE)
    order = WalletOrder.objects.get()
    page = client.get("/sandbox/zalopay/openinapp", {"order": order.token})
    assert page.status_code == 200 and "ZaloPay" in page.content.decode()
    declined = client.post("/sandbox/zalopay/decide/", {"order": order.pk, "decision": "decline"})
    params = dict(parse_qsl(urlsplit(declined["Location"]).query, keep_blank_values=True))
    assert params["status"] == "-1" and not Notification.objects.exists()
    expected = zalopay.mac(ZALOPAY["key2"], "|".join(params[n] for n in zalopay.RETURN_MAC))
    assert params["checksum"] == expected


@transactional
def test_the_outbox_delivers_momos_ipn_until_the_portal_answers_204(wallets_on_live_server):  # noqa: F811
    customer, _bills = customer_with_bills(amounts=[452_160])
    payment = Payment.objects.create(
        reference="EVN2K7Q9M4XC", customer=customer, amount=452_160, method="redirect",
        partner_id=_partner_id("MOMO"), status="pending",
    )  # fmt: skip
    body = _momo_create(ipnUrl=f"{wallets_on_live_server.url}/callbacks/momo/ipn/")
    body["signature"] = momo.signature(body, momo.CREATE_SIGNED, momo.merchant())
    momo.create(body, base_url=wallets_on_live_server.url)
    momo.decide(order_id=WalletOrder.objects.get().pk, approve=True)
    assert delivery.deliver_due() == 1
    notification = Notification.objects.get()
    assert notification.state == Notification.State.DELIVERED and notification.last_status == 204
    message = InboundMessage.objects.get()
    assert message.payment_id == payment.pk and message.signature_valid


@transactional
def test_the_outbox_retries_a_zalopay_callback_not_acknowledged_and_stops_after_four(
    wallets_on_live_server,  # noqa: F811
    settings,
):
    zalopay.create(
        _zalopay_create(callback_url="http://127.0.0.1:9/nothing-listens"), base_url=BASE
    )
    zalopay.decide(order_id=WalletOrder.objects.get().pk, approve=True)
    notification = Notification.objects.get()
    for attempt in range(1, 5):
        state = delivery.deliver(notification.pk)
        notification.refresh_from_db()
        assert notification.attempts == attempt
    assert state == Notification.State.GAVE_UP
    data = json.loads(notification.payload["data"])
    assert re.fullmatch(r"\d{6}_EVN2K7Q9M4XC", data["app_trans_id"]) and data["amount"] == 452_160


def _partner_id(code: str) -> int:
    from payments.models import Partner

    return Partner.objects.get(code=code).pk
