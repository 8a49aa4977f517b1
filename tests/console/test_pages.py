"""What agents read: the customer's whole story on one page, and the queues with their counts."""

from __future__ import annotations

import datetime
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments import inbox, services
from payments.models import BankTransfer, InboundMessage, Partner, Payment
from tests.console import factories
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


def test_the_customer_page_shows_details_bills_payments_timelines_and_raw_messages(agent_client):
    customer, bills = customer_with_bills(
        unpaid=2,
        amounts=[300_000, 150_000],
        name="Trần Thị Hồng Nhung",
        address="Số 8, ngõ 4, đường Nguyễn Du, phường Nam Hà, TP Hà Tĩnh",
        phone="0912000111",
        email="nhung.tran@example.vn",
    )
    failed = factories.vietqr_payment(customer, bill_numbers=[bills[0].number])
    services.payment_cancel(
        payment_id=failed.id, report=services.Report(source=services.Source.API)
    )
    payment = factories.redirect_payment(customer)
    body = json.dumps(
        {"vnp_TxnRef": payment.reference, "vnp_ResponseCode": "00", "note": "<script>x</script>"}
    )
    message = InboundMessage.objects.create(
        partner=Partner.objects.get(code="SANDBOX"),
        kind=InboundMessage.Kind.IPN,
        dedupe_key=f"ipn:{payment.reference}",
        headers={"User-Agent": "sandbox-bank/1.0"},
        body=body,
        signature_valid=True,
        payment=payment,
        processed_at=timezone.now(),
        outcome="applied",
    )
    services.payment_mark_succeeded(
        payment_id=payment.id,
        report=services.Report(source=services.Source.IPN, message=message),
        provider_txn_id="14422574",
    )

    response = agent_client.get(reverse("console:customer", args=[customer.code]))
    assert response.status_code == 200
    text = response.content.decode()
    # Unmasked for staff.
    for detail in (customer.name, customer.address, customer.phone, customer.email):
        assert detail in text
    for bill in bills:
        assert bill.number in text
    assert "450.000 ₫" in text and "300.000 ₫" in text
    # Every payment and attempt, with its timeline and the message behind it.
    assert payment.reference in text and failed.reference in text
    assert "2 giao dịch và lần thanh toán" in text
    # States by their Vietnamese names, the details of an event in words.
    assert "mới tạo → đang chờ" in text and "đang chờ → thành công" in text
    assert "đang chờ → đã hủy" in text
    assert "Mã giao dịch ngân hàng: 14422574" in text
    assert "thông báo của ngân hàng (IPN)" in text
    assert f'href="#m-{message.id}"' in text and f'id="m-{message.id}"' in text
    assert "14422574" in text and "sandbox-bank/1.0" in text
    assert "&quot;vnp_ResponseCode&quot;: &quot;00&quot;" in text
    assert "<script>x</script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "chữ ký hợp lệ" in text
    # What the agent may do from here.
    assert reverse("console:payment-resend-receipt", args=[payment.id]) in text
    assert reverse("console:receipt", args=[payment.id]) in text
    assert reverse("console:payment-recheck", args=[payment.id]) not in text  # settled


def test_the_customer_page_runs_a_fixed_number_of_queries(agent_client):
    customer, bills = customer_with_bills(unpaid=2)
    url = reverse("console:customer", args=[customer.code])
    factories.succeeded_payment(customer, bill_numbers=[bills[0].number])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert agent_client.get(url).status_code == 200
        return len(captured)

    few = queries()
    for _ in range(6):
        factories.vietqr_payment(customer)
    assert queries() == few


def test_an_unknown_customer_is_a_404(agent_client):
    assert agent_client.get(reverse("console:customer", args=["PA14HT9999999"])).status_code == 404
    assert agent_client.get(
        "/console/payments/00000000-0000-4000-8000-000000000000/refund/"
    ).status_code in (403, 404)
    assert agent_client.get("/console/transfers/99999999999999999999999/").status_code == 404


def _one_in_each_queue() -> dict[str, object]:
    stale_customer, _ = customer_with_bills(unpaid=1)
    stale = factories.vietqr_payment(stale_customer)
    Payment.objects.filter(pk=stale.pk).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    review_customer, _ = customer_with_bills(unpaid=1)
    review = factories.succeeded_payment(review_customer)
    services.payment_flag_review(
        payment_id=review.id,
        report=services.Report(source=services.Source.IPN),
        reason="Ngân hàng báo thất bại sau khi đã thành công.",
    )
    return {
        "unmatched-transfers": factories.transfer(amount=100_000, content="TIEN DIEN NHA BA LAN"),
        "wrong-amount-transfers": factories.transfer(
            amount=99_000, status=BankTransfer.Status.WRONG_AMOUNT
        ),
        "settled-transfers": factories.transfer(
            amount=98_000, status=BankTransfer.Status.NEEDS_REFUND
        ),
        "needs-refund": factories.payment_needing_refund(),
        "overdue-pending": stale,
        "needs-review": review,
        "set-aside-messages": InboundMessage.objects.create(
            kind=InboundMessage.Kind.TRANSFER,
            dedupe_key="transfer:set-aside-1",
            body="{}",
            attempts=inbox.MAX_ATTEMPTS,
            outcome=InboundMessage.Outcome.ERROR,
            outcome_detail="RuntimeError('a rule the database refused')",
        ),
    }


def test_the_console_home_counts_every_queue_and_each_queue_lists_its_items(agent_client):
    empty = agent_client.get(reverse("console:home"))
    assert {q.slug: n for q, n in empty.context["queues"]} == {
        "unmatched-transfers": 0,
        "wrong-amount-transfers": 0,
        "settled-transfers": 0,
        "needs-refund": 0,
        "overdue-pending": 0,
        "needs-review": 0,
        "set-aside-messages": 0,
    }
    items = _one_in_each_queue()
    home = agent_client.get(reverse("console:home"))
    assert {q.slug: n for q, n in home.context["queues"]} == dict.fromkeys(items, 1)
    text = home.content.decode()
    assert "Hàng đợi công việc" in text and "Giao dịch cần hoàn tiền" in text
    for slug, item in items.items():
        page = agent_client.get(reverse("console:queue", args=[slug]))
        assert page.status_code == 200
        shown = page.content.decode()
        if isinstance(item, InboundMessage):
            key = "a rule the database refused"
        else:
            key = item.external_id if isinstance(item, BankTransfer) else item.reference
        assert key in shown, slug
    review = agent_client.get(reverse("console:queue", args=["needs-review"])).content.decode()
    assert "Ngân hàng báo thất bại sau khi đã thành công." in review
    assert agent_client.get(reverse("console:queue", args=["no-such-queue"])).status_code == 404


def test_a_settled_transfer_is_shown_without_actions(supervisor_client):
    transfer = factories.transfer(amount=50_000, status=BankTransfer.Status.RESOLVED)
    text = supervisor_client.get(reverse("console:transfer", args=[transfer.id])).content.decode()
    assert transfer.external_id in text
    assert reverse("console:transfer-resolve", args=[transfer.id]) not in text


def test_what_the_system_noted_is_read_in_vietnamese(agent_client, supervisor_client):
    """A transfer's reason, a payment's review flag and a message's outcome are stored in
    English; agents read them in Vietnamese, amounts and states included."""
    from payments import notes

    customer, _ = customer_with_bills(unpaid=1, amounts=[452_160])
    payment = factories.vietqr_payment(customer)
    short = factories.transfer(amount=100_000, status=BankTransfer.Status.WRONG_AMOUNT)
    BankTransfer.objects.filter(pk=short.pk).update(
        payment=payment,
        reason=notes.WRONG_AMOUNT.say(
            reference=payment.reference, expected=452_160, amount=100_000
        ),
    )
    page = agent_client.get(reverse("console:transfer", args=[short.pk])).content.decode()
    assert f"Giao dịch {payment.reference} cần 452.160 đồng" in page
    assert "expects" not in page

    settled = factories.succeeded_payment()
    services.payment_mark_failed(
        payment_id=settled.id, report=services.Report(source=services.Source.QUERY), reason="24"
    )
    page = supervisor_client.get(
        reverse("console:customer", args=[settled.customer.code])
    ).content.decode()
    assert "Ngân hàng báo thất bại (24) cho một giao dịch ở trạng thái thành công." in page
    assert "Cần kiểm tra: Ngân hàng báo thất bại" in page  # the event's detail, in words
    queue = supervisor_client.get(reverse("console:queue", args=["needs-review"])).content.decode()
    assert "Ngân hàng báo thất bại (24)" in queue


def test_the_customer_page_gives_each_unpaid_bill_its_reference_and_pay_link(agent_client):
    from customers import paylinks
    from customers.models import Bill
    from payments.references import bill_reference

    customer, _bills = customer_with_bills(unpaid=2)
    page = agent_client.get(f"/console/customers/{customer.code}/").content.decode()
    for bill in Bill.objects.filter(customer=customer):
        assert bill_reference(bill.pk) in page
        assert paylinks.pay_path(bill_id=bill.pk, due_date=bill.due_date) in page
