"""Many notifications for one payment at the same moment: it is settled once, money never lost.

Real threads against the real PostgreSQL (each thread its own connection), and the same through
a real Celery worker process.
"""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from django.db import connection
from django.test import Client

from customers.models import Bill
from payments import applier, matching, services
from payments.models import BankTransfer, InboundMessage, Payment, PaymentEvent
from tests.conftest import wait_until
from tests.factories import customer_with_bills, transfer_body

KEY = "dev-transfer-webhook-key"  # the worker process reads its settings from the environment
THREADS = 20
_ids = itertools.count(900_000)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _key(settings):
    # The worker process has the environment's settings; the web side here must agree with it.
    settings.TRANSFER_WEBHOOK_API_KEY = KEY


def notification(payment: Payment, **overrides):
    return transfer_body(payment, sender_id=next(_ids), **overrides)


def _payment():
    customer, bills = customer_with_bills(unpaid=2, amounts=[300_000, 152_160])
    return services.payment_start(customer_code=customer.code, method="vietqr").payment, bills


def _all_at_once(bodies, *, process: bool) -> list[int]:
    """POST each body from its own thread, released together; optionally apply it right away."""
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []
    failures: list[BaseException] = []

    def send(body) -> None:
        try:
            client = Client()
            barrier.wait()
            response = client.post(
                "/callbacks/transfers/",
                data=json.dumps(body),
                content_type="application/json",
                headers={"Authorization": f"Apikey {KEY}"},
            )
            statuses.append(response.status_code)
            if process:
                message = InboundMessage.objects.get(dedupe_key=f"transfer:{body['id']}")
                applier.apply_one(message.pk)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return statuses


def _settled_once(payment: Payment, bills: list[Bill]) -> None:
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    for bill in bills:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.paid_by_id == payment.pk


def test_twenty_copies_of_one_notification_at_once_settle_the_payment_once():
    payment, bills = _payment()
    body = notification(payment)
    statuses = _all_at_once([body] * THREADS, process=True)
    assert statuses == [200] * THREADS
    assert InboundMessage.objects.count() == 1
    transfer = BankTransfer.objects.get()
    assert transfer.status == BankTransfer.Status.MATCHED
    _settled_once(payment, bills)


def test_one_credit_announced_under_twenty_sender_ids_at_once_is_one_transfer():
    payment, bills = _payment()
    first = notification(payment)
    bodies = [first] + [{**first, "id": first["id"] + i} for i in range(1, THREADS)]
    _all_at_once(bodies, process=True)
    assert InboundMessage.objects.count() == THREADS
    outcomes = sorted(InboundMessage.objects.values_list("outcome", flat=True))
    assert outcomes == sorted([matching.MATCHED] + [matching.DUPLICATE] * (THREADS - 1))
    assert BankTransfer.objects.count() == 1
    _settled_once(payment, bills)


def test_twenty_different_transfers_for_one_payment_settle_it_once_and_keep_the_rest():
    payment, bills = _payment()
    _all_at_once([notification(payment) for _ in range(THREADS)], process=True)
    statuses = sorted(BankTransfer.objects.values_list("status", flat=True))
    assert statuses == sorted(
        [BankTransfer.Status.MATCHED] + [BankTransfer.Status.NEEDS_REFUND] * (THREADS - 1)
    )
    assert BankTransfer.objects.filter(payment=payment).count() == THREADS
    _settled_once(payment, bills)


@pytest.mark.celery_worker
def test_twenty_copies_through_the_real_worker_settle_the_payment_once(celery_worker):
    payment, bills = _payment()
    body = notification(payment)
    assert _all_at_once([body] * THREADS, process=False) == [200] * THREADS
    message = InboundMessage.objects.get()
    wait_until(lambda: InboundMessage.objects.filter(pk=message.pk, processed_at__isnull=False))
    message.refresh_from_db()
    assert message.outcome == matching.MATCHED and message.payment_id == payment.pk
    assert BankTransfer.objects.get().status == BankTransfer.Status.MATCHED
    _settled_once(payment, bills)


@pytest.mark.celery_worker
def test_twenty_different_transfers_through_the_real_worker_settle_once(celery_worker):
    payment, bills = _payment()
    _all_at_once([notification(payment) for _ in range(THREADS)], process=False)
    wait_until(lambda: not InboundMessage.objects.filter(processed_at__isnull=True).exists())
    assert BankTransfer.objects.filter(status=BankTransfer.Status.MATCHED).count() == 1
    assert (
        BankTransfer.objects.filter(status=BankTransfer.Status.NEEDS_REFUND).count() == THREADS - 1
    )
    _settled_once(payment, bills)
