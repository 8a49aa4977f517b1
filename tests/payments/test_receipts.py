"""Receipts: sent once on success by e-mail and SMS, again only when an agent asks."""

from __future__ import annotations

import pytest
from django.core import mail

from payments import notifications, services
from payments.models import Payment
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sms(settings):
    settings.SMS_BACKEND = "payments.notifications.LocmemSMSBackend"
    notifications.LocmemSMSBackend.outbox.clear()


def _paid():
    customer, _ = customer_with_bills(unpaid=2, amounts=[300_000, 150_000])
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    services.payment_mark_succeeded(
        payment_id=payment.id, report=services.Report(source=services.Source.TRANSFER)
    )
    return Payment.objects.get(pk=payment.pk)


def test_a_succeeded_payment_gets_one_receipt_by_email_and_sms():
    payment = _paid()
    assert notifications.receipt_send(payment_id=str(payment.id)) is True
    assert notifications.receipt_send(payment_id=str(payment.id)) is False
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["an.nguyen@example.vn"]
    assert payment.reference in message.subject
    assert "450.000 ₫" in message.body and f"/receipts/{payment.id}/" in message.body
    assert notifications.LocmemSMSBackend.outbox == [
        ("0912345678", notifications.LocmemSMSBackend.outbox[0][1])
    ]
    assert "450.000 ₫" in notifications.LocmemSMSBackend.outbox[0][1]


def test_an_agent_can_resend_a_receipt():
    payment = _paid()
    notifications.receipt_send(payment_id=str(payment.id))
    assert notifications.receipt_send(payment_id=str(payment.id), force=True) is True
    assert len(mail.outbox) == 2


def test_a_pending_payment_gets_no_receipt():
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    assert notifications.receipt_send(payment_id=str(payment.id), force=True) is False
    assert mail.outbox == []


def test_a_failed_send_releases_the_claim_for_a_retry(settings):
    payment = _paid()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_PORT = 1  # nothing listens there
    with pytest.raises(OSError):
        notifications.receipt_send(payment_id=str(payment.id))
    assert Payment.objects.get(pk=payment.pk).receipt_sent_at is None


def test_the_receipt_page_shows_a_masked_customer_and_the_bills(client):
    payment = _paid()
    response = client.get(f"/receipts/{payment.id}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "Nguyễn V** A**" in text and "Nguyễn Văn An" not in text
    assert "0912345678" not in text and "an.nguyen@example.vn" not in text
    assert "450.000 ₫" in text


def test_the_receipt_of_an_unsettled_payment_sends_to_the_pay_page(client):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    response = client.get(f"/receipts/{payment.id}/")
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.id}/"


def _paid_twice():
    """A household started a VietQR payment, then paid the same bills through a bank as well,
    and both went through: the second paid nothing and goes back."""
    customer, _ = customer_with_bills(unpaid=2, amounts=[300_000, 150_000])
    first = services.payment_start(customer_code=customer.code, method="vietqr").payment
    second = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    for payment in (first, second):
        services.payment_mark_succeeded(
            payment_id=payment.id, report=services.Report(source=services.Source.IPN)
        )
    return Payment.objects.get(pk=second.pk)


def test_a_payment_that_paid_nothing_says_so_and_when_the_money_goes_back(client, settings):
    settings.REFUND_WORKING_DAYS = 7
    payment = _paid_twice()
    assert payment.needs_refund and payment.refund_amount == payment.amount == 450_000
    text = client.get(f"/receipts/{payment.id}/").content.decode()
    assert "Các hóa đơn này đã được thanh toán trước đó" in text
    assert "450.000 ₫ sẽ được hoàn về tài khoản đã chuyển trong vòng 7 ngày làm việc" in text
    assert "Cảm ơn bạn!" not in text and "alert-ok" not in text

    notifications.receipt_send(payment_id=str(payment.id))
    body = mail.outbox[-1].body
    assert body.startswith("Các hóa đơn này đã được thanh toán trước đó")
    assert "sẽ được hoàn về tài khoản đã chuyển trong vòng 7 ngày làm việc" in body
    sms = notifications.LocmemSMSBackend.outbox[-1][1]
    assert "da duoc thanh toan truoc do" in sms and "7 ngay lam viec" in sms
    assert "da nhan" not in sms  # not a plain "received"


def test_the_receipt_mentions_the_email_only_when_one_was_sent(client):
    payment = _paid()
    assert "email chúng tôi đã gửi" in client.get(f"/receipts/{payment.id}/").content.decode()
    payment.customer.email = ""
    payment.customer.save(update_fields=["email"])
    text = client.get(f"/receipts/{payment.id}/").content.decode()
    assert "email chúng tôi đã gửi" not in text and "lưu lại trang này" in text


def test_the_receipt_writes_the_amount_in_words_and_offers_to_print(client):
    payment = _paid()
    text = client.get(f"/receipts/{payment.id}/").content.decode()
    assert "Bằng chữ" in text and "Bốn trăm năm mươi nghìn đồng" in text
    assert "data-print" in text and "js/print.js" in text
