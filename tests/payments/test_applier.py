"""The applier: stored messages applied a batch at a time, in order, exactly once; a poison
message set aside with its error while the rest of its batch applies."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Bill
from payments import applier, inbox
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.factories import poison_settling
from tests.sandbox.support import bank_message, ipn_url, redirect_payment

pytestmark = pytest.mark.django_db
Status = Payment.Status
Outcome = InboundMessage.Outcome


_TRANSACTIONS = iter(range(15_000_000, 16_000_000))


def _store_ipns(client, payments, **message):
    for payment in payments:
        params = bank_message(payment, transaction_no=str(next(_TRANSACTIONS)), **message)
        assert client.get(ipn_url(params)).json()["RspCode"] == "00"


def _queries_to_apply(client, count: int) -> int:
    payments = [redirect_payment() for _ in range(count)]
    _store_ipns(client, payments)
    with CaptureQueriesContext(connection) as queries:
        assert applier.apply_waiting() == count
    assert {p.status for p in Payment.objects.filter(pk__in=[p.pk for p in payments])} == {
        Status.SUCCEEDED
    }
    return len(queries)


def test_a_batch_costs_the_same_queries_whatever_its_size(client):
    """Settling is set-based: 40 IPNs take no more queries than 2 (and no task each)."""
    few = _queries_to_apply(client, 2)
    many = _queries_to_apply(client, 40)
    assert many == few


def test_messages_of_one_payment_in_one_batch_apply_in_their_order(client):
    payment = redirect_payment()
    # The bank first said no, then (a second transaction) yes: the failure stands, the
    # success is flagged for an agent, as one after the other.
    declined = bank_message(payment, response_code="51", status="02", transaction_no="1")
    approved = bank_message(payment, transaction_no="2")
    # Both answered 00: the payment is still pending until an applier takes them.
    assert client.get(ipn_url(declined)).json()["RspCode"] == "00"
    assert client.get(ipn_url(approved)).json()["RspCode"] == "00"
    assert applier.apply_waiting() == 2
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.needs_review
    outcomes = list(
        InboundMessage.objects.filter(payment=payment).order_by("pk").values_list("outcome")
    )
    assert outcomes == [(Outcome.FAILED_APPLIED,), (Outcome.SUCCEEDED_FLAGGED,)]


def test_a_poison_message_is_set_aside_and_the_rest_of_its_batch_applies(client, monkeypatch):
    payments = [redirect_payment() for _ in range(5)]
    poison = payments[2]
    poison_settling(monkeypatch, poison, "a rule the database refused")
    _store_ipns(client, payments)
    assert applier.apply_waiting() == 5  # four applied, one counted as a failed attempt
    statuses = dict(Payment.objects.values_list("pk", "status"))
    assert [statuses[p.pk] for p in payments] == [Status.SUCCEEDED] * 2 + [Status.PENDING] + [
        Status.SUCCEEDED
    ] * 2
    stuck = InboundMessage.objects.get(payment=poison)
    assert stuck.processed_at is None and stuck.attempts == 1
    assert stuck.outcome == Outcome.ERROR and "a rule the database refused" in stuck.outcome_detail
    # It waits before its next try: a drain right away leaves it alone.
    assert applier.apply_waiting() == 0
    # After the last allowed attempt it is set aside for an agent, and no applier takes it.
    InboundMessage.objects.filter(pk=stuck.pk).update(
        attempts=inbox.MAX_ATTEMPTS - 1, last_enqueued_at=None
    )
    assert applier.apply_waiting() == 1
    assert [m.pk for m in inbox.inbox_set_aside()] == [stuck.pk]
    InboundMessage.objects.filter(pk=stuck.pk).update(last_enqueued_at=None)
    assert applier.apply_waiting() == 0
    assert not PaymentEvent.objects.filter(payment=poison, to_status=Status.SUCCEEDED).exists()
    assert not Bill.objects.filter(paid_by=poison).exists()


def test_a_message_applied_once_is_never_applied_again(client):
    payment = redirect_payment()
    _store_ipns(client, [payment])
    message = InboundMessage.objects.get()
    assert applier.apply_one(message.pk) == Outcome.SUCCEEDED_APPLIED
    assert applier.apply(message_ids=[message.pk]) == {}  # nothing left to claim
    assert applier.apply_one(message.pk) == Outcome.SUCCEEDED_APPLIED  # its stored outcome
    assert PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED).count() == 1
