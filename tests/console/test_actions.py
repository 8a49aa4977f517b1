"""Each console action: confirmed first, done through the services, and written to the audit log
with who, when, what and why."""

from __future__ import annotations

import datetime
import html
import json
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation

from common.error_messages import error_message
from config.celery import app
from console.services import PERSONAL_DATA_VIEWS
from customers.models import AuditEntry, Bill
from payments.models import BankTransfer, Payment
from tests.console import factories
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


def actions_audited():
    """Audit entries of actions; pages an action redirects to audit their viewing apart."""
    return AuditEntry.objects.exclude(action__in=PERSONAL_DATA_VIEWS)


def only_audit_entry(action: str) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(action=action))
    assert len(entries) == 1, entries
    return entries[0]


def assert_audited(entry: AuditEntry, *, who: Any, payment: Payment, why: str) -> None:
    assert entry.actor == who
    assert entry.payment_id == payment.id and entry.customer_id == payment.customer_id
    assert entry.target == payment.reference
    assert entry.reason == why
    assert timezone.now() - entry.at < datetime.timedelta(minutes=1)


def queued_tasks(queue: str = "default") -> list[dict[str, Any]]:
    with app.connection_for_read() as conn:
        raw = conn.default_channel.client.lrange(queue, 0, -1)
    return [json.loads(item) for item in raw]


@pytest.fixture
def empty_broker():
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")
    yield
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")


# --- Re-check with the bank ---------------------------------------------------------------------
def test_an_agent_asks_the_bank_again_and_it_is_audited_and_queued(
    agent, agent_client, django_capture_on_commit_callbacks, empty_broker
):
    customer, _ = customer_with_bills(unpaid=1)
    payment = factories.redirect_payment(customer)
    url = reverse("console:payment-recheck", args=[payment.id])
    confirm = agent_client.get(url)
    assert confirm.status_code == 200
    assert payment.reference in confirm.content.decode()
    assert not actions_audited().exists()  # looking is not doing

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = agent_client.post(url, {"reason": "Khách gọi: đã bị trừ tiền"})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:customer", args=[customer.code])
    entry = only_audit_entry("payment_recheck")
    assert_audited(entry, who=agent, payment=payment, why="Khách gọi: đã bị trừ tiền")
    assert entry.detail["status"] == "pending" and entry.detail["partner"] == "SANDBOX"
    assert len(callbacks) == 1
    tasks = [t["headers"] for t in queued_tasks()]
    assert [(t["task"], t["argsrepr"]) for t in tasks] == [
        ("payments.tasks.poll_gateway_payment", repr((str(payment.id),)))
    ]


def test_asking_again_needs_a_reason(agent_client, django_capture_on_commit_callbacks):
    customer, _ = customer_with_bills(unpaid=1)
    payment = factories.redirect_payment(customer)
    url = reverse("console:payment-recheck", args=[payment.id])
    with django_capture_on_commit_callbacks() as callbacks:
        response = agent_client.post(url, {"reason": "   "})
    assert response.status_code == 400
    assert "Trường này là bắt buộc" in response.content.decode()
    assert not actions_audited().exists() and not callbacks


def test_a_vietqr_payment_is_not_asked_about(agent_client, django_capture_on_commit_callbacks):
    customer, _ = customer_with_bills(unpaid=1)
    payment = factories.vietqr_payment(customer)
    url = reverse("console:payment-recheck", args=[payment.id])
    with django_capture_on_commit_callbacks() as callbacks:
        response = agent_client.post(url, {"reason": "Khách hỏi"}, follow=True)
    assert "Chỉ có thể hỏi lại ngân hàng" in response.content.decode()
    assert not actions_audited().exists() and not callbacks


# --- Resend a receipt ---------------------------------------------------------------------------
def test_an_agent_resends_a_receipt_and_it_is_audited(agent, agent_client, sms_outbox):
    payment = factories.succeeded_payment()
    first_sent = payment.receipt_sent_at
    url = reverse("console:payment-resend-receipt", args=[payment.id])
    confirm = agent_client.get(url).content.decode()
    assert payment.customer.email in confirm
    mail.outbox.clear()
    response = agent_client.post(url, {"reason": "Khách không nhận được e-mail"}, follow=True)
    assert "Đã gửi lại biên nhận" in response.content.decode()
    assert [m.to for m in mail.outbox] == [[payment.customer.email]]
    assert payment.reference in mail.outbox[0].body
    assert [to for to, _text in sms_outbox] == [payment.customer.phone]
    entry = only_audit_entry("receipt_resend")
    assert_audited(entry, who=agent, payment=payment, why="Khách không nhận được e-mail")
    assert entry.detail == {"outcome": "sent", "to": ["email", "phone"]}
    payment.refresh_from_db()
    assert payment.receipt_sent_at and payment.receipt_sent_at != first_sent


def test_a_receipt_with_nowhere_to_go_is_refused_before_anything_is_sent(agent_client):
    customer, _ = customer_with_bills(unpaid=1, email="", phone="")
    payment = factories.succeeded_payment(customer)
    mail.outbox.clear()
    url = reverse("console:payment-resend-receipt", args=[payment.id])
    response = agent_client.post(url, {"reason": "Khách cần biên nhận"}, follow=True)
    assert "không có địa chỉ e-mail hay số điện thoại" in response.content.decode()
    assert not mail.outbox and not actions_audited().exists()


def test_a_failed_send_is_audited_and_reported(agent, agent_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: refused
    payment = factories.succeeded_payment()
    url = reverse("console:payment-resend-receipt", args=[payment.id])
    response = agent_client.post(url, {"reason": "Gửi lại"}, follow=True)
    assert "Không gửi được biên nhận" in response.content.decode()
    entry = only_audit_entry("receipt_resend")
    assert entry.actor == agent and entry.detail["outcome"] == "failed"


# --- Cash at the counter ------------------------------------------------------------------------
def test_an_agent_takes_cash_at_the_counter_in_two_steps_and_prints_a_receipt(agent, agent_client):
    customer, bills = customer_with_bills(unpaid=2, amounts=[300_000, 150_000])
    url = reverse("console:cash", args=[customer.code])
    form = agent_client.get(url)
    assert form.status_code == 200
    assert bills[0].number in form.content.decode()
    choice = {
        "bills": [b.number for b in bills],
        "channel": "COUNTER",
        "note": "Chủ hộ nộp tại quầy, biên lai số 0451",
    }
    review = agent_client.post(url, {**choice, "step": "review"})
    assert review.status_code == 200
    text = review.content.decode()
    assert "450.000 ₫" in text and "Xác nhận thu tiền mặt" in text
    assert not Payment.objects.exists()  # nothing is recorded before the confirmation

    done = agent_client.post(url, {**choice, "step": "confirm"})
    payment = Payment.objects.get()
    assert done.status_code == 302
    assert done["Location"] == reverse("console:receipt", args=[payment.id])
    assert payment.method == "cash" and payment.partner.code == "COUNTER"
    assert payment.status == "succeeded" and payment.amount == 450_000
    assert set(Bill.objects.filter(paid_by=payment).values_list("number", flat=True)) == {
        b.number for b in bills
    }
    entry = only_audit_entry("cash_payment")
    assert_audited(entry, who=agent, payment=payment, why="Chủ hộ nộp tại quầy, biên lai số 0451")
    assert entry.detail["amount"] == 450_000

    receipt = agent_client.get(done["Location"]).content.decode()
    assert "Biên nhận thanh toán tiền điện" in receipt
    assert customer.name in receipt and customer.address in receipt  # unmasked, for the customer
    assert "450.000 ₫" in receipt and agent.username in receipt
    assert "data-print" in receipt and "console.js" in receipt

    again = agent_client.post(url, {**choice, "step": "confirm"})
    assert again.status_code == 400  # the bills are no longer unpaid: nothing is taken twice
    assert Payment.objects.count() == 1


def test_cash_through_a_collector_for_one_of_two_bills(agent_client):
    customer, bills = customer_with_bills(unpaid=2, amounts=[300_000, 150_000])
    url = reverse("console:cash", args=[customer.code])
    agent_client.post(
        url,
        {
            "bills": [bills[0].number],
            "channel": "COLLECTOR",
            "note": "Thu tại nhà",
            "step": "confirm",
        },
    )
    payment = Payment.objects.get()
    assert payment.partner.code == "COLLECTOR" and payment.amount == 300_000
    bills[1].refresh_from_db()
    assert bills[1].status == "unpaid"


def test_cash_needs_bills_and_a_note(agent_client):
    customer, bills = customer_with_bills(unpaid=1)
    url = reverse("console:cash", args=[customer.code])
    no_bill = agent_client.post(url, {"channel": "COUNTER", "note": "x", "step": "confirm"})
    assert no_bill.status_code == 400 and "Hãy chọn ít nhất một hóa đơn" in no_bill.content.decode()
    no_note = agent_client.post(
        url, {"bills": [bills[0].number], "channel": "COUNTER", "step": "confirm"}
    )
    assert no_note.status_code == 400
    other = agent_client.post(
        url, {"bills": ["HD-NOT-HERS"], "channel": "COUNTER", "note": "x", "step": "confirm"}
    )
    assert other.status_code == 400
    forged = agent_client.post(
        url, {"bills": [bills[0].number], "channel": "VCB", "note": "x", "step": "confirm"}
    )
    assert forged.status_code == 400
    assert not Payment.objects.exists() and not actions_audited().exists()


# --- Match a transfer ---------------------------------------------------------------------------
def test_an_agent_matches_an_unmatched_transfer_to_its_payment(agent, agent_client):
    customer, bills = customer_with_bills(unpaid=1, amounts=[321_000])
    payment = factories.vietqr_payment(customer)
    transfer = factories.transfer(amount=321_000, content="CK tien dien thang 10")

    page = agent_client.get(reverse("console:transfer", args=[transfer.id])).content.decode()
    assign_url = reverse("console:transfer-assign", args=[transfer.id, payment.id])
    assert payment.reference in page and assign_url in page
    response = agent_client.post(assign_url, {"reason": "Khách gửi ảnh chụp giao dịch"})
    assert response.status_code == 302

    payment.refresh_from_db()
    transfer.refresh_from_db()
    assert payment.status == "succeeded"
    assert transfer.status == BankTransfer.Status.MATCHED and transfer.payment == payment
    assert transfer.resolved_by == agent
    bills[0].refresh_from_db()
    assert bills[0].paid_by == payment
    entry = only_audit_entry("transfer_assign")
    assert_audited(entry, who=agent, payment=payment, why="Khách gửi ảnh chụp giao dịch")
    assert entry.detail["transfer"] == transfer.external_id


def test_a_transfer_of_another_amount_cannot_be_matched(agent_client):
    customer, _ = customer_with_bills(unpaid=1, amounts=[321_000])
    payment = factories.vietqr_payment(customer)
    transfer = factories.transfer(amount=320_000, status=BankTransfer.Status.WRONG_AMOUNT)
    page = agent_client.get(
        reverse("console:transfer", args=[transfer.id]), {"q": payment.reference}
    ).content.decode()
    assert payment.reference in page and "không khớp" in page
    url = reverse("console:transfer-assign", args=[transfer.id, payment.id])
    response = agent_client.post(url, {"reason": "Khách chuyển thiếu"}, follow=True)
    with translation.override("vi"):
        said = error_message("amount_mismatch", expected=321_000, received=320_000)
    assert html.escape(said) in response.content.decode()
    payment.refresh_from_db()
    transfer.refresh_from_db()
    assert payment.status == "pending" and transfer.status == BankTransfer.Status.WRONG_AMOUNT
    assert not actions_audited().exists()


def test_a_supervisor_closes_a_transfer_settled_outside_the_portal(supervisor, supervisor_client):
    transfer = factories.transfer(amount=320_000, status=BankTransfer.Status.WRONG_AMOUNT)
    url = reverse("console:transfer-resolve", args=[transfer.id])
    assert supervisor_client.get(url).status_code == 200
    supervisor_client.post(url, {"reason": "Đã chuyển trả lại khách qua Vietcombank"})
    transfer.refresh_from_db()
    assert transfer.status == BankTransfer.Status.RESOLVED and transfer.resolved_by == supervisor
    entry = only_audit_entry("transfer_resolve")
    assert entry.actor == supervisor and entry.target == transfer.external_id
    assert entry.reason == "Đã chuyển trả lại khách qua Vietcombank"


# --- Refund ---------------------------------------------------------------------------------------
def test_a_supervisor_marks_a_payment_refunded_with_a_note(supervisor, supervisor_client):
    payment = factories.payment_needing_refund()
    url = reverse("console:payment-refund", args=[payment.id])
    confirm = supervisor_client.get(url).content.decode()
    assert "452.160 ₫" in confirm
    response = supervisor_client.post(url, {"reason": "Đã trả 452.160 đ tiền mặt ngày 20/11"})
    assert response.status_code == 302
    payment.refresh_from_db()
    assert not payment.needs_refund and payment.status == "refunded" and payment.refunded_at
    entry = only_audit_entry("payment_refund")
    assert_audited(
        entry, who=supervisor, payment=payment, why="Đã trả 452.160 đ tiền mặt ngày 20/11"
    )
    # Twice is refused, and not audited twice.
    again = supervisor_client.post(url, {"reason": "lại"}, follow=True)
    assert "Không có gì thay đổi" in again.content.decode()
    assert AuditEntry.objects.filter(action="payment_refund").count() == 1


# --- The audit log ------------------------------------------------------------------------------
def test_the_audit_log_lists_every_action_with_who_what_and_why(
    agent, agent_client, supervisor_client, finance_client
):
    customer, bills = customer_with_bills(unpaid=1)
    agent_client.post(
        reverse("console:cash", args=[customer.code]),
        {
            "bills": [bills[0].number],
            "channel": "COUNTER",
            "note": "Nộp tại quầy",
            "step": "confirm",
        },
    )
    for client in (supervisor_client, finance_client):
        page = client.get(reverse("console:audit"))
        text = page.content.decode()
        assert "Ghi nhận thanh toán tiền mặt" in text
        assert agent.username in text and "Nộp tại quầy" in text and customer.code in text
    filtered = supervisor_client.get(reverse("console:audit"), {"action": "payment_refund"})
    assert "Nộp tại quầy" not in filtered.content.decode()
    by_actor = supervisor_client.get(reverse("console:audit"), {"actor": agent.username})
    assert "Nộp tại quầy" in by_actor.content.decode()
