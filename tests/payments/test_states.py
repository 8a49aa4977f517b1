"""The state machine as data: every (status, event) pair is decided by the table, and the
services do to a payment exactly what the table says, for every pair."""

from __future__ import annotations

import datetime
import itertools

import pytest
from django.utils import timezone

from payments import services, states
from payments.models import Payment, PaymentBill
from payments.states import Event, Verdict
from tests.factories import customer_with_bills

Status = Payment.Status
IPN = services.Report(source=services.Source.IPN)
PAIRS = list(itertools.product(Status, Event))


def test_the_table_decides_every_pair_and_names_a_real_status():
    assert set(states.TRANSITIONS) == set(PAIRS)
    for (status, event), step in states.TRANSITIONS.items():
        assert (step.target is not None) == (step.verdict is Verdict.MOVE), (status, event)
        if step.target is not None:
            assert step.target in Status.values


def test_the_sets_of_statuses_follow_from_the_table():
    # Money may still settle exactly the statuses a success moves to succeeded.
    movable = {s for s in Status if states.step(s, Event.SUCCEED).verdict is Verdict.MOVE}
    assert movable == states.SETTLEABLE
    # A repeated success changes nothing exactly where it is already settled.
    repeats = {s for s in Status if states.step(s, Event.SUCCEED).verdict is Verdict.ALREADY}
    assert repeats == states.SETTLED
    assert states.COLLECTED < states.SETTLED < states.FINAL | {Status.REVERSED}
    # Nothing leaves a final status but the money's own way back (refund, reversal), and money
    # that arrives after a cancel.
    for status in states.FINAL:
        for event in Event:
            step = states.step(status, event)
            if step.verdict is Verdict.MOVE:
                assert event in {Event.REFUND_WHOLE, Event.REFUND_PART, Event.REVERSE} or (
                    status,
                    event,
                ) == (Status.CANCELLED, Event.SUCCEED)


def _payment_in(status: str) -> Payment:
    customer, _bills = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    Payment.objects.filter(pk=payment.pk).update(
        status=status, expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    return Payment.objects.get(pk=payment.pk)


def _apply(payment: Payment, event: Event) -> services.Outcome:
    if event is Event.SUCCEED:
        return services.payment_mark_succeeded(payment_id=payment.pk, report=IPN)
    if event is Event.FAIL:
        return services.payment_mark_failed(payment_id=payment.pk, report=IPN, reason="declined")
    if event is Event.CANCEL:
        return services.payment_cancel(payment_id=payment.pk, report=IPN)
    if event is Event.EXPIRE:
        return services.payment_expire(payment_id=payment.pk)
    if event is Event.REVERSE:
        return services.payment_reverse(payment_id=payment.pk, report=IPN, reason="same day")
    # A refund is of money waiting to go back; a partial one keeps the bills it paid.
    Payment.objects.filter(pk=payment.pk).update(needs_refund=True, refund_amount=1)
    PaymentBill.objects.filter(payment=payment).update(applied=event is Event.REFUND_PART)
    return services.payment_refund(payment_id=payment.pk, actor=None, note="given back")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "event"), [pair for pair in PAIRS if pair[1] is not Event.OPEN], ids=str
)
def test_the_services_do_what_the_table_says(status, event):
    payment = _payment_in(status)
    step = states.step(status, event)
    if step.verdict is Verdict.REFUSE:
        with pytest.raises(services.InvalidTransition):
            _apply(payment, event)
        assert Payment.objects.get(pk=payment.pk).status == status
        return
    events_before = payment.events.count()
    outcome = _apply(payment, event)
    payment.refresh_from_db()
    if step.verdict is Verdict.MOVE:
        assert outcome == services.Outcome.APPLIED
        assert payment.status == step.target
        last = payment.events.latest("id")
        assert (last.from_status, last.to_status) == (status, step.target)
    elif step.verdict is Verdict.ALREADY:
        assert outcome == services.Outcome.ALREADY_DONE
        assert payment.status == status and payment.events.count() == events_before
    elif step.verdict is Verdict.NOTE:
        assert outcome == services.Outcome.ALREADY_DONE
        assert payment.status == status and payment.events.count() == events_before + 1
        assert not payment.needs_review
    else:
        assert outcome == services.Outcome.FLAGGED
        assert payment.status == status and payment.needs_review


@pytest.mark.django_db
def test_opening_a_payment_is_the_tables_created_to_pending():
    customer, _bills = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    step = states.step(Status.CREATED, Event.OPEN)
    event = payment.events.get()
    assert (event.from_status, event.to_status) == (Status.CREATED, step.target)
    assert payment.status == step.target
