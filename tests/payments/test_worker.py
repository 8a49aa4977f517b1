"""The payments core with a real Celery worker, the real Redis broker and PostgreSQL."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from customers.models import Bill
from payments import services, tasks
from payments.models import InboundMessage, Payment
from tests.conftest import mailing_worker, purge_broker, wait_until
from tests.factories import customer_with_bills

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_twenty_threads_confirming_one_payment_apply_it_once():
    customer, bills = customer_with_bills(unpaid=2)
    payment = services.payment_create(customer_code=customer.code, method="vietqr")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def confirm():
        try:
            barrier.wait()
            outcomes.append(
                services.payment_mark_succeeded(
                    payment_id=payment.id,
                    report=services.Report(source=services.Source.IPN),
                    amount=payment.amount,
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_done"] * 19 + ["applied"]
    assert payment.events.filter(to_status="succeeded").count() == 1
    assert Bill.objects.filter(id__in=[b.id for b in bills], paid_by=payment).count() == 2


def test_the_worker_expires_stale_payments(celery_worker):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_create(customer_code=customer.code, method="vietqr")
    Payment.objects.filter(pk=payment.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    tasks.expire_stale_payments.delay()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == "expired")


def test_an_inbox_row_whose_task_was_lost_is_picked_up_by_the_sweeper(celery_worker):
    # Stored 31 s ago, never enqueued: as if the broker was down when it arrived.
    message = InboundMessage.objects.create(
        kind=InboundMessage.Kind.INQUIRY,
        dedupe_key="lost-task-1",
        body="{}",
        received_at=timezone.now() - datetime.timedelta(seconds=31),
    )
    fresh = InboundMessage.objects.create(
        kind=InboundMessage.Kind.INQUIRY, dedupe_key="fresh-1", body="{}"
    )
    tasks.sweep_inbox.delay()
    wait_until(lambda: InboundMessage.objects.get(pk=message.pk).processed_at is not None)
    assert InboundMessage.objects.get(pk=message.pk).attempts == 0
    # A row younger than the retry delay is left to its own task.
    assert InboundMessage.objects.get(pk=fresh.pk).processed_at is None


def test_a_settled_payment_sends_its_receipt_through_the_worker(transactional_db, tmp_path):
    mail_dir = tmp_path / "mail"
    purge_broker()
    worker = mailing_worker(mail_dir)
    worker.start()
    try:
        customer, _ = customer_with_bills(unpaid=1)
        payment = services.payment_create(customer_code=customer.code, method="vietqr")
        services.payment_mark_succeeded(
            payment_id=payment.id, report=services.Report(source=services.Source.TRANSFER)
        )
        wait_until(lambda: Payment.objects.get(pk=payment.pk).receipt_sent_at is not None)
        files = wait_until(lambda: list(Path(mail_dir).glob("*.log")))
        assert payment.reference in files[0].read_text()
    finally:
        worker.stop()
