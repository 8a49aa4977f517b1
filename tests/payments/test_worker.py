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
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
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
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    Payment.objects.filter(pk=payment.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    tasks.expire_stale_payments.delay()
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == "expired")


def test_an_inbox_row_no_applier_took_is_applied_by_the_sweeper(celery_worker):
    # Stored while the broker was down: no applier was woken for it.
    message = InboundMessage.objects.create(
        kind=InboundMessage.Kind.INQUIRY, dedupe_key="lost-task-1", body="{}"
    )
    # Its last attempt failed a moment ago: it waits INBOX_RETRY_AFTER before the next one.
    failed = InboundMessage.objects.create(
        kind=InboundMessage.Kind.INQUIRY,
        dedupe_key="failed-1",
        body="{}",
        attempts=1,
        outcome=InboundMessage.Outcome.ERROR,
        last_enqueued_at=timezone.now(),
    )
    tasks.sweep_inbox.delay()
    wait_until(lambda: InboundMessage.objects.get(pk=message.pk).processed_at is not None)
    message.refresh_from_db()
    assert message.attempts == 0 and message.outcome == InboundMessage.Outcome.NO_HANDLER
    assert InboundMessage.objects.get(pk=failed.pk).processed_at is None


def test_a_settled_payment_sends_its_receipt_through_the_worker(transactional_db, tmp_path):
    mail_dir = tmp_path / "mail"
    purge_broker()
    worker = mailing_worker(mail_dir)
    worker.start()
    try:
        customer, _ = customer_with_bills(unpaid=1)
        payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
        services.payment_mark_succeeded(
            payment_id=payment.id, report=services.Report(source=services.Source.TRANSFER)
        )
        wait_until(lambda: Payment.objects.get(pk=payment.pk).receipt_sent_at is not None)
        files = wait_until(lambda: list(Path(mail_dir).glob("*.log")))
        assert payment.reference in files[0].read_text()
    finally:
        worker.stop()
