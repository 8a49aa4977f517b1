"""Settling many payments at once (`services.payments_mark_succeeded`): the single path's rules,
its locks and its side effects, for a whole statement in a few queries."""

from __future__ import annotations

import base64
import datetime
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from customers import selectors
from customers.models import Bill
from payments import bulk, services, tasks
from payments.models import (
    BankTransfer,
    InboundMessage,
    Payment,
    PaymentBill,
    PaymentEvent,
)
from tests.conftest import mailing_worker, purge_broker, wait_until
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

Status = Payment.Status
Outcome = services.Outcome
TRANSFER = services.Report(source=services.Source.TRANSFER)
AT = datetime.datetime(2026, 11, 27, 2, 15, tzinfo=datetime.UTC)


# --- A picture of the books, without ids and clock times --------------------------------------
def _clean(value: Any, transfers: dict[int, str]) -> Any:
    """Database ids in event details and reasons, replaced by what they stand for."""
    if isinstance(value, dict):
        return {
            key: transfers.get(item, item) if key == "bank_transfer_id" else _clean(item, transfers)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_clean(item, transfers) for item in value]
    if isinstance(value, str):
        return re.sub(
            r"bank transfer (\d+)",
            lambda match: f"bank transfer {transfers.get(int(match[1]), match[1])}",
            value,
        )
    return value


def snapshot() -> dict[str, Any]:
    """Every payment, bill, line, event, transfer and inbox row, keyed by what people see
    (references, bill numbers, the bank's transaction ids), not by ids or clock times."""
    refs = dict(Payment.objects.values_list("pk", "reference"))
    keys = dict(InboundMessage.objects.values_list("pk", "dedupe_key"))
    transfers = dict(BankTransfer.objects.values_list("pk", "external_id"))
    return {
        "payments": sorted(
            Payment.objects.values_list(
                "reference",
                "status",
                "amount",
                "succeeded_at",
                "provider_txn_id",
                "needs_refund",
                "refund_amount",
                "needs_review",
                "review_reason",
            )
        ),
        "bills": sorted(
            (number, status, paid_at, refs.get(paid_by))
            for number, status, paid_at, paid_by in Bill.objects.values_list(
                "number", "status", "paid_at", "paid_by"
            )
        ),
        "lines": sorted(
            (refs[payment], bill, amount, applied)
            for payment, bill, amount, applied in PaymentBill.objects.values_list(
                "payment", "bill__number", "amount", "applied"
            )
        ),
        # In the order they were written, payment by payment.
        "events": sorted(
            (
                refs[payment],
                index,
                from_status,
                to_status,
                source,
                _clean(detail, transfers),
                actor,
                keys.get(message),
            )
            for index, (payment, from_status, to_status, source, detail, actor, message) in (
                enumerate(
                    PaymentEvent.objects.order_by("id").values_list(
                        "payment",
                        "from_status",
                        "to_status",
                        "source",
                        "detail",
                        "actor",
                        "message",
                    )
                )
            )
        ),
        "transfers": sorted(
            (
                external_id,
                account,
                source,
                amount,
                status,
                _clean(reason, transfers),
                refs.get(payment),
                keys.get(message),
                partner,
            )
            for external_id, account, source, amount, status, reason, payment, message, partner in (
                BankTransfer.objects.values_list(
                    "external_id",
                    "account_number",
                    "source",
                    "amount",
                    "status",
                    "reason",
                    "payment",
                    "message",
                    "partner",
                )
            )
        ),
        "inbox": sorted(
            (
                key,
                kind,
                body,
                processed is not None,
                outcome,
                _clean(detail, transfers),
                refs.get(p),
            )
            for key, kind, body, processed, outcome, detail, p in InboundMessage.objects.values_list(
                "dedupe_key", "kind", "body", "processed_at", "outcome", "outcome_detail", "payment"
            )
        ),
    }


def _events_in_payment_order(picture: dict[str, Any]) -> list[tuple[Any, ...]]:
    # The position among all events differs between the paths; within one payment it must not.
    by_payment: dict[str, list[tuple[Any, ...]]] = {}
    for ref, _index, *rest in picture["events"]:
        by_payment.setdefault(ref, []).append(tuple(rest))
    return sorted(by_payment.items())


def same_books(first: dict[str, Any], second: dict[str, Any]) -> None:
    for part in ("payments", "bills", "lines", "transfers", "inbox"):
        assert first[part] == second[part], part
    assert _events_in_payment_order(first) == _events_in_payment_order(second)


def both_ways(build_and_run_single: Any, run_batch: Any) -> tuple[Any, Any, Any, Any]:
    """Run the single path, picture the books, roll back to before it, then the batch path."""
    with transaction.atomic():
        before = transaction.savepoint()
        single = build_and_run_single()
        single_picture = snapshot()
        transaction.savepoint_rollback(before)
        batch = run_batch()
        batch_picture = snapshot()
    return single, single_picture, batch, batch_picture


# --- The service --------------------------------------------------------------------------------
def _pending(amounts=(452_160,)) -> Payment:
    customer, _ = customer_with_bills(unpaid=len(amounts), amounts=list(amounts))
    return services.payment_start(customer_code=customer.code, method="vietqr").payment


def _covering(bills: list[Bill]) -> Payment:
    """Another pending payment for bills that already have one (a second checkout)."""
    return services.payment_start(
        customer_code=bills[0].customer.code,
        method="vietqr",
        bill_numbers=[bill.number for bill in bills],
    ).payment


def _mixed_settlements(agent) -> list[services.Settlement]:
    """Every kind of report a bank can make about a payment, in one list."""
    fresh = _pending(amounts=(300_000, 152_160))
    expired = _pending()
    services.payment_expire(payment_id=expired.pk, now=expired.expires_at)
    settled = _pending()
    services.payment_mark_succeeded(payment_id=settled.pk, report=TRANSFER, provider_txn_id="T-1")
    cancelled = _pending()
    services.payment_cancel(payment_id=cancelled.pk, report=TRANSFER)
    failed = _pending()
    services.payment_mark_failed(payment_id=failed.pk, report=TRANSFER, reason="declined")
    retried = _pending()
    twice = _pending()
    # Two checkouts of one customer's bills: whoever settles first pays them.
    customer, shared_bills = customer_with_bills(unpaid=2, amounts=[200_000, 100_000])
    first_of_two = services.payment_start(customer_code=customer.code, method="vietqr").payment
    second_of_two = _covering(shared_bills[1:])
    # A bill paid at the counter meanwhile.
    counter = _pending(amounts=(120_000, 80_000))
    services.payment_record_cash(
        customer_code=counter.customer.code,
        bill_numbers=[counter.lines.order_by("id").first().bill.number],
        actor=agent,
    )
    with_txn = _pending()

    def settle(payment, amount=None, txn="", at=AT):
        detail = {"case": payment.reference}
        report = services.Report(source=services.Source.TRANSFER, detail=detail)
        return services.Settlement(
            payment_id=payment.pk,
            report=report,
            amount=payment.amount if amount is None else amount,
            provider_txn_id=txn,
            at=at,
        )

    return [
        settle(fresh),
        settle(expired, at=AT + datetime.timedelta(minutes=1)),
        settle(settled, txn="T-1"),
        settle(settled, txn="T-2"),  # more money, another bank transaction: flagged
        settle(cancelled),
        settle(failed),
        settle(retried, amount=retried.amount - 1),  # wrong amount: nothing changes
        settle(retried),
        settle(twice),
        settle(twice),
        settle(second_of_two),
        settle(first_of_two),
        settle(counter),
        services.Settlement(
            payment_id=str(with_txn.pk), report=TRANSFER, provider_txn_id="T-9", at=AT
        ),
    ]


def test_a_batch_has_exactly_the_effects_of_the_same_settlements_one_by_one(agent):
    settlements = _mixed_settlements(agent)

    def one_by_one():
        outcomes = []
        for settlement in settlements:
            try:
                outcomes.append(
                    services.payment_mark_succeeded(
                        payment_id=settlement.payment_id,
                        report=settlement.report,
                        amount=settlement.amount,
                        provider_txn_id=settlement.provider_txn_id,
                        at=settlement.at,
                    )
                )
            except services.AmountMismatch:
                outcomes.append(None)
        return outcomes

    def batch():
        return [
            result.outcome for result in services.payments_mark_succeeded(settlements=settlements)
        ]

    single, single_books, batched, batch_books = both_ways(one_by_one, batch)
    assert batched == single
    assert single == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.ALREADY_DONE,
        Outcome.FLAGGED,
        Outcome.APPLIED,  # cancelled, then the money came: it pays the bills
        Outcome.FLAGGED,
        None,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.ALREADY_DONE,
        Outcome.APPLIED,
        Outcome.NEEDS_REFUND,
        Outcome.NEEDS_REFUND,
        Outcome.APPLIED,
    ]
    same_books(single_books, batch_books)
    # The effects themselves, not only that two runs agree (both now share one implementation).
    payment = [Payment.objects.get(pk=settlement.payment_id) for settlement in settlements]
    fresh, expired, settled, _, cancelled, failed, _, retried, twice = payment[:9]
    second_of_two, first_of_two, counter, with_txn = payment[10:]
    for paid, at in ((fresh, AT), (expired, AT + datetime.timedelta(minutes=1))):
        assert paid.status == Payment.Status.SUCCEEDED and paid.succeeded_at == at
        assert {b.paid_by_id for b in Bill.objects.filter(payment_lines__payment=paid)} == {paid.pk}
    assert retried.status == twice.status == Payment.Status.SUCCEEDED
    assert twice.events.filter(to_status=Payment.Status.SUCCEEDED).count() == 1
    assert with_txn.provider_txn_id == "T-9"
    # Whoever settles first pays the shared bill; the other owes its amount back.
    shared = second_of_two.lines.get().bill
    assert shared.paid_by_id == second_of_two.pk and not second_of_two.needs_refund
    assert (first_of_two.needs_refund, first_of_two.refund_amount) == (True, 100_000)
    assert first_of_two.events.get(to_status="succeeded").detail["bills_already_paid"] == [
        shared.number
    ]
    assert (counter.needs_refund, counter.refund_amount) == (True, 120_000)
    assert settled.provider_txn_id == "T-1" and settled.review_reason == (
        "A second bank transaction T-2 reported success."
    )
    assert cancelled.status == Payment.Status.SUCCEEDED and not cancelled.needs_review
    assert failed.status == Payment.Status.FAILED and failed.needs_review
    assert not fresh.needs_review and not fresh.needs_refund


def test_each_result_says_the_status_the_settlement_found(agent):
    payment = _pending()
    results = services.payments_mark_succeeded(
        settlements=[
            services.Settlement(payment_id=payment.pk, report=TRANSFER, amount=1),
            services.Settlement(payment_id=payment.pk, report=TRANSFER, amount=payment.amount),
            services.Settlement(payment_id=payment.pk, report=TRANSFER, amount=payment.amount),
        ]
    )
    assert [(r.outcome, r.previous) for r in results] == [
        (None, Status.PENDING),
        (Outcome.APPLIED, Status.PENDING),
        (Outcome.ALREADY_DONE, Status.SUCCEEDED),
    ]
    assert all(r.payment.status == Status.SUCCEEDED for r in results)
    assert Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED
    assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1


def test_a_bill_two_payments_cover_goes_to_the_first_and_the_second_owes_a_refund():
    first = _pending(amounts=(200_000, 100_000))
    bills = [line.bill for line in first.lines.order_by("id")]
    second = _covering(bills[1:])
    services.payments_mark_succeeded(
        settlements=[
            services.Settlement(payment_id=first.pk, report=TRANSFER, at=AT),
            services.Settlement(payment_id=second.pk, report=TRANSFER, at=AT),
        ]
    )
    second.refresh_from_db()
    assert second.status == Status.SUCCEEDED and second.needs_refund
    assert second.refund_amount == 100_000
    assert set(
        Bill.objects.filter(pk__in=[b.pk for b in bills]).values_list("paid_by", flat=True)
    ) == {first.pk}
    event = second.events.get(to_status=Status.SUCCEEDED)
    assert event.detail["bills_already_paid"] == [bills[1].number]
    assert not PaymentBill.objects.filter(payment=second, applied=True).exists()


def test_an_unknown_payment_changes_nothing():
    payment = _pending()
    with pytest.raises(Payment.DoesNotExist):
        services.payments_mark_succeeded(
            settlements=[
                services.Settlement(payment_id=payment.pk, report=TRANSFER),
                services.Settlement(
                    payment_id="00000000-0000-4000-8000-000000000000", report=TRANSFER
                ),
            ]
        )
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert not payment.events.filter(to_status=Status.SUCCEEDED).exists()


def test_nothing_to_settle_is_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert services.payments_mark_succeeded(settlements=[]) == []


def test_the_queries_do_not_grow_with_the_batch(django_assert_max_num_queries):
    payments = [_pending() for _ in range(40)]
    settlements = [services.Settlement(payment_id=p.pk, report=TRANSFER) for p in payments]
    # Savepoint, payments, lines, bills, bills, lines, payments, events, customers, release.
    with django_assert_max_num_queries(12):
        services.payments_mark_succeeded(settlements=settlements)
    assert Payment.objects.filter(status=Status.SUCCEEDED).count() == 40


def test_the_settled_customers_lookups_are_forgotten(django_capture_on_commit_callbacks):
    payments = [_pending() for _ in range(3)]
    codes = [payment.customer.code for payment in payments]
    for code in codes:
        assert selectors.customer_bills_lookup(code=code).total_due > 0  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        services.payments_mark_succeeded(
            settlements=[services.Settlement(payment_id=p.pk, report=TRANSFER) for p in payments]
        )
    for code in codes:
        # The cached answer (something to pay) is gone: the lookup reads the paid bills.
        assert selectors.customer_bills_lookup(code=code).total_due == 0


def _queued(queue: str = "default") -> list[tuple[str, list[Any]]]:
    """The tasks waiting in the real broker: (task name, args)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    tasks_waiting = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # LPUSHed: the oldest is last
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        tasks_waiting.append((message["headers"]["task"], args))
    return tasks_waiting


def test_receipts_are_published_in_batches_after_the_commit(
    django_capture_on_commit_callbacks, monkeypatch
):
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail("this test reads the real broker (CELERY_BROKER_URL=redis://...)")
    monkeypatch.setattr(services, "RECEIPT_BATCH", 2)
    purge_broker()
    payments = [_pending() for _ in range(5)]
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.payments_mark_succeeded(
                settlements=[
                    services.Settlement(payment_id=p.pk, report=TRANSFER) for p in payments
                ]
            )
        assert _queued() == []  # nothing leaves before the commit
        for callback in callbacks:
            callback()
        queued = _queued()
    finally:
        purge_broker()
    assert [name for name, _args in queued] == ["payments.tasks.send_receipts"] * 3
    assert [len(args[0]) for _name, args in queued] == [2, 2, 1]
    assert [pk for _name, args in queued for pk in args[0]] == [str(p.pk) for p in payments]


def test_a_receipt_that_cannot_be_sent_gets_its_own_retrying_task(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_PORT = 1  # nothing listens there
    payments = [_pending() for _ in range(2)]
    services.payments_mark_succeeded(
        settlements=[services.Settlement(payment_id=p.pk, report=TRANSFER) for p in payments]
    )
    purge_broker()
    try:
        assert tasks.send_receipts([str(p.pk) for p in payments]) == 0
        queued = _queued()
    finally:
        purge_broker()
    assert queued == [("payments.tasks.send_receipt", [str(p.pk)]) for p in payments]
    assert not Payment.objects.filter(receipt_sent_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_statements_receipts_are_sent_by_the_worker(tmp_path):
    mail_dir = tmp_path / "mail"
    purge_broker()
    worker = mailing_worker(mail_dir)
    try:
        worker.start()
        payments = [_pending() for _ in range(3)]
        services.payments_mark_succeeded(
            settlements=[services.Settlement(payment_id=p.pk, report=TRANSFER) for p in payments]
        )
        wait_until(
            lambda: Payment.objects.filter(receipt_sent_at__isnull=False).count() == 3, timeout=30
        )

        def mails() -> str:
            return "".join(path.read_text() for path in Path(mail_dir).glob("*.log"))

        # The file backend writes a batch's messages as it sends them and flushes its file when
        # the batch's connection closes, which may come a moment after the payments are marked.
        wait_until(lambda: all(p.receipt_number in mails() for p in payments), timeout=10)
    finally:
        worker.stop()  # also one that never answered a ping


@pytest.mark.django_db(transaction=True)
def test_single_settlements_racing_a_batch_apply_each_payment_once_without_deadlock():
    payments = [_pending(amounts=(100_000, 50_000)) for _ in range(30)]
    barrier = threading.Barrier(2)
    batch_results: list[services.Settled] = []
    single_outcomes: dict[Any, Outcome] = {}
    failures: list[BaseException] = []

    def batch():
        try:
            barrier.wait()
            batch_results.extend(
                services.payments_mark_succeeded(
                    settlements=[
                        services.Settlement(payment_id=p.pk, report=TRANSFER, amount=p.amount)
                        for p in payments
                    ]
                )
            )
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def singles():
        try:
            barrier.wait()
            # The other way round, one transaction each, like webhooks arriving meanwhile.
            for payment in reversed(payments):
                single_outcomes[payment.pk] = services.payment_mark_succeeded(
                    payment_id=payment.pk,
                    report=services.Report(source=services.Source.IPN),
                    amount=payment.amount,
                )
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch), threading.Thread(target=singles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    for payment, result in zip(payments, batch_results, strict=True):
        assert sorted([result.outcome, single_outcomes[payment.pk]]) == [
            Outcome.ALREADY_DONE,
            Outcome.APPLIED,
        ]
        assert payment.events.filter(to_status=Status.SUCCEEDED).count() == 1
        assert set(
            Bill.objects.filter(payment_lines__payment=payment).values_list("paid_by", flat=True)
        ) == {payment.pk}
    assert Payment.objects.filter(status=Status.SUCCEEDED).count() == 30


def test_array_literals_carry_any_text_and_value_exactly():
    texts = ["plain", "", "NULL", 'say "hi"', "back\\slash", "a,b", "{braces}", " spaced ", "Việt"]
    texts.append(None)
    ids = [uuid.uuid4(), None]
    times = [AT, AT.astimezone(datetime.timezone(datetime.timedelta(hours=7))), None]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::text[], %s::uuid[], %s::timestamptz[], %s::bigint[], %s::boolean[]",
            [
                bulk.pg_array(texts),
                bulk.pg_array(ids),
                bulk.pg_array(times),
                bulk.pg_array([1, -2, None, 2**62]),
                bulk.pg_array([True, False, None]),
            ],
        )
        assert cursor.fetchone() == (texts, ids, times, [1, -2, None, 2**62], [True, False, None])
