"""The HTTP SMS gateway adapter, against the sandbox playing the gateway: each request signed
over its body, refused when the signature is wrong; the sandbox outbox page lists what came."""

from __future__ import annotations

import json

import pytest
import requests

from payments import notifications
from sandbox.models import TextMessage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(live_server, settings):
    settings.SMS_GATEWAY_URL = f"{live_server.url}/sandbox/sms/"
    return settings.SMS_GATEWAY_URL


def test_an_sms_goes_through_the_gateway_when_it_is_configured(gateway):
    backend = notifications.sms_backend()
    assert isinstance(backend, notifications.HttpSMSGateway)
    backend.send(to="0912345678", text="EVN Ha Tinh: tiền điện")
    [sms] = TextMessage.objects.all()
    assert (sms.to, sms.text) == ("0912345678", "EVN Ha Tinh: tiền điện")


def test_without_a_gateway_url_the_configured_backend_is_used(settings):
    settings.SMS_GATEWAY_URL = ""
    settings.SMS_BACKEND = "payments.notifications.LocmemSMSBackend"
    assert isinstance(notifications.sms_backend(), notifications.LocmemSMSBackend)


def test_the_gateway_refuses_a_wrong_signature_and_the_adapter_raises(gateway, settings):
    body = json.dumps({"to": "0912345678", "text": "x"}).encode()
    forged = requests.post(gateway, data=body, headers={"X-Signature": "0" * 64}, timeout=5)
    assert forged.status_code == 401
    signed = notifications.sms_gateway_signature(body, settings.SMS_GATEWAY_KEY)
    changed = body.replace(b"x", b"y")
    assert (
        requests.post(gateway, data=changed, headers={"X-Signature": signed}, timeout=5).status_code
        == 401
    )
    settings.SANDBOX_SMS_KEY = "the-gateways-own-key"
    with pytest.raises(notifications.SMSGatewayError, match="401"):
        notifications.sms_backend().send(to="0912345678", text="x")
    assert not TextMessage.objects.exists()


def test_the_outbox_page_lists_the_sms_and_the_mail_files(client, gateway, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    (tmp_path / "1.log").write_text("Subject: Hóa đơn tiền điện", encoding="utf-8")
    notifications.sms_backend().send(to="0912345678", text="EVN Ha Tinh: nhac thanh toan")
    text = client.get("/sandbox/messages/").content.decode()
    assert "EVN Ha Tinh: nhac thanh toan" in text and "Hóa đơn tiền điện" in text
