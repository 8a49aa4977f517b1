"""The "pay this QR" page: a VietQR paid at the sandbox bank becomes a SePay-shaped notification."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from payments.channels.vietqr import payload as vietqr
from sandbox import delivery
from sandbox.models import Notification
from tests.sandbox.test_delivery import merchant  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db
PAYLOAD = vietqr.build_payload(
    vietqr.VietQR(
        bank_bin="970436", account="0011004321987", amount=762_160, purpose="EVNABCDEFGH2"
    )
)


def test_the_page_offers_to_paste_a_code_or_type_the_transfer(client):
    page = client.get("/sandbox/qr/", {"payload": PAYLOAD}).content.decode()
    assert PAYLOAD in page
    for field in ("payload", "account", "amount", "content"):
        assert f'<label for="{field}">' in page


def test_paying_a_qr_queues_a_notification_with_the_documented_shape(client, settings):
    settings.SANDBOX_PORTAL_URL = "http://portal.example"
    response = client.post("/sandbox/qr/", {"payload": PAYLOAD})
    assert response.status_code == 302
    notification = Notification.objects.get()
    assert notification.kind == Notification.Kind.TRANSFER
    assert notification.url == "http://portal.example/callbacks/transfers/"
    body = notification.payload
    assert set(body) == {
        "id", "gateway", "transactionDate", "accountNumber", "code", "content", "transferType",
        "transferAmount", "accumulated", "subAccount", "referenceCode",
    }  # fmt: skip
    assert isinstance(body["id"], int) and 0 < body["id"] < 2**53
    assert body["gateway"] == "Vietcombank" and body["accountNumber"] == "0011004321987"
    assert body["content"] == "EVNABCDEFGH2" and body["transferType"] == "in"
    assert body["transferAmount"] == 762_160 and body["accumulated"] == 762_160
    assert body["code"] is None and body["subAccount"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body["transactionDate"])
    gmt7 = datetime.timezone(datetime.timedelta(hours=7))
    sent_at = datetime.datetime.strptime(body["transactionDate"], "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=gmt7
    )
    assert abs(timezone.now() - sent_at) < datetime.timedelta(minutes=1)
    second = client.post("/sandbox/qr/", {"payload": PAYLOAD})
    assert second.status_code == 302
    latest = Notification.objects.order_by("-pk").first().payload
    assert latest["accumulated"] == 2 * 762_160 and latest["referenceCode"] != body["referenceCode"]
    assert latest["id"] != body["id"]


def test_a_transfer_can_be_typed_by_hand_or_its_note_changed(client):
    client.post(
        "/sandbox/qr/", {"account": "0011004321987", "amount": "452160", "content": "evn abc"}
    )
    client.post("/sandbox/qr/", {"payload": PAYLOAD, "content": "MBVCB.123.EVNABCDEFGH2.CT tu"})
    typed, edited = Notification.objects.order_by("pk")
    assert typed.payload["transferAmount"] == 452_160 and typed.payload["content"] == "evn abc"
    assert edited.payload["content"] == "MBVCB.123.EVNABCDEFGH2.CT tu"
    assert edited.payload["transferAmount"] == 762_160


@pytest.mark.parametrize(
    "form",
    [
        {"payload": PAYLOAD[:-1] + ("0" if PAYLOAD[-1] != "0" else "1")},
        {"account": "0011004321987", "amount": "", "content": "EVNX"},
        {"account": "", "amount": "100", "content": "EVNX"},
        {"account": "1", "amount": "abc", "content": "EVNX"},
    ],
)
def test_a_bad_code_or_missing_field_is_explained_and_nothing_is_sent(client, form):
    response = client.post("/sandbox/qr/", form)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not Notification.objects.exists()


def test_the_notification_is_posted_with_the_api_key_until_acknowledged(
    client,
    merchant,  # noqa: F811
    settings,
):
    settings.TRANSFER_WEBHOOK_API_KEY = "key-for-tests"
    merchant.answers = [(503, b'{"success": false}'), (200, b'{"success": true}')]
    client.post("/sandbox/qr/", {"payload": PAYLOAD})
    now = timezone.now()
    delivery.deliver_due(now=now)
    notification = Notification.objects.get()
    assert notification.state == Notification.State.PENDING and notification.attempts == 1
    delivery.deliver_due(now=now + datetime.timedelta(minutes=1))
    notification.refresh_from_db()
    assert notification.state == Notification.State.DELIVERED
    first, second = merchant.seen
    assert first["method"] == "POST" and first["path"] == "/callbacks/transfers/"
    assert first["headers"]["Authorization"] == "Apikey key-for-tests"
    assert first["headers"]["Content-Type"] == "application/json"
    # A retry is the same notification: the same id, so the portal applies it once.
    assert first["body"] == second["body"] == notification.payload


def test_a_transfer_sender_gives_up_after_seven_attempts(client, merchant):  # noqa: F811
    merchant.answers = [(401, b'{"error": {"code": "unauthorized"}}')] * 10
    client.post("/sandbox/qr/", {"payload": PAYLOAD})
    now = timezone.now()
    for _attempt in range(10):
        delivery.deliver_due(now=now)
        now += datetime.timedelta(hours=1)
    notification = Notification.objects.get()
    assert notification.state == Notification.State.GAVE_UP and notification.attempts == 7


def test_control_characters_are_refused_not_stored(client):
    response = client.post("/sandbox/qr/", {"account": "1\x00", "amount": "1", "content": "x"})
    assert response.status_code == 400
    assert not Notification.objects.exists()


def test_a_non_ascii_digit_amount_is_refused_on_the_page_not_a_500(client):
    response = client.post(
        "/sandbox/qr/", {"account": "0011004321987", "amount": "²", "content": "evn abc"}
    )
    assert response.status_code < 500
    assert not Notification.objects.exists()
