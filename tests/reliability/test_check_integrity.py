"""check_integrity finds each kind of breach, and passes on healthy books."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from payments import services
from payments.integrity import integrity_check
from payments.models import BankTransfer, InboundMessage, Payment, PaymentBill, PaymentEvent
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db
REPORT = services.Report(source=services.Source.IPN)


def _settled(unpaid=1):
    customer, bills = customer_with_bills(unpaid=unpaid)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    services.payment_mark_succeeded(payment_id=payment.id, report=REPORT)
    return Payment.objects.get(pk=payment.pk), bills


def test_healthy_books_pass_including_a_needs_refund_payment():
    _settled(unpaid=2)
    customer, _ = customer_with_bills(unpaid=1)
    first = services.payment_start(customer_code=customer.code, method="vietqr").payment
    # By another method: a second start by the same one is handed the open first payment.
    second = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    services.payment_mark_succeeded(payment_id=first.id, report=REPORT)
    services.payment_mark_succeeded(payment_id=second.id, report=REPORT)
    assert Payment.objects.get(pk=second.pk).needs_refund
    report = integrity_check()
    assert report.ok, report.as_text()
    out = io.StringIO()
    call_command("check_integrity", stdout=out)
    assert "OK: no breach." in out.getvalue()


def _rules(report):
    return {breach.rule for breach in report.breaches}


def test_it_finds_a_payment_whose_amount_does_not_add_up():
    payment, _ = _settled()
    Payment.objects.filter(pk=payment.pk).update(amount=payment.amount + 1)
    assert (
        "payment amount != bills it paid + amount to refund + money it gave to other bills"
        in _rules(integrity_check())
    )


def test_it_finds_a_paid_bill_without_its_payment_line():
    payment, bills = _settled()
    PaymentBill.objects.filter(payment=payment).update(applied=False)
    rules = _rules(integrity_check())
    assert "paid bill without the applied line of its payment" in rules


def test_it_finds_a_paid_bill_whose_payment_did_not_succeed():
    payment, _ = _settled()
    # Only raw SQL can do this: the services never would.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE payments_payment SET status = 'failed' WHERE id = %s", [payment.pk])
    rules = _rules(integrity_check())
    assert "paid bill whose payment is not succeeded" in rules
    assert "applied line of a payment that is not succeeded" in rules


def test_it_finds_an_unprocessed_inbound_message_but_not_one_in_flight():
    InboundMessage.objects.create(kind="transfer", dedupe_key="young", body="{}")
    assert integrity_check().ok
    InboundMessage.objects.create(
        kind="transfer",
        dedupe_key="old",
        body="{}",
        received_at=timezone.now() - datetime.timedelta(minutes=10),
    )
    report = integrity_check()
    assert "inbound message not processed" in _rules(report)
    with pytest.raises(CommandError):
        call_command("check_integrity", stdout=io.StringIO())


def test_it_finds_a_matched_transfer_of_the_wrong_amount():
    payment, _ = _settled()
    BankTransfer.objects.create(
        source="webhook",
        external_id="FT9",
        amount=payment.amount - 1,
        occurred_at=timezone.now(),
        status="matched",
        payment=payment,
    )
    assert "transfers matched to a payment that do not bring its amount" in _rules(
        integrity_check()
    )


def test_it_finds_a_payment_that_succeeded_twice_but_not_a_flag_on_a_settled_one():
    payment, _ = _settled()
    # A flag on a settled payment is recorded succeeded -> succeeded: not a second success.
    services.payment_flag_review(payment_id=payment.pk, report=REPORT, reason="odd report")
    assert integrity_check().ok
    PaymentEvent.objects.create(
        payment=payment, from_status="expired", to_status="succeeded", source="ipn"
    )
    assert "payment succeeded more than once" in _rules(integrity_check())


def test_it_finds_a_payment_matched_by_two_transfers():
    payment, _ = _settled()
    for external_id in ("FT1", "FT2"):
        BankTransfer.objects.create(
            source="webhook",
            external_id=external_id,
            amount=payment.amount,
            occurred_at=timezone.now(),
            status="matched",
            payment=payment,
        )
    assert "transfers matched to a payment that do not bring its amount" in _rules(
        integrity_check()
    )


def test_it_finds_money_owed_back_that_nobody_is_asked_to_give_back():
    customer, _ = customer_with_bills(unpaid=1)
    first = services.payment_start(customer_code=customer.code, method="vietqr").payment
    # By another method: a second start by the same one is handed the open first payment.
    second = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    services.payment_mark_succeeded(payment_id=first.id, report=REPORT)
    services.payment_mark_succeeded(payment_id=second.id, report=REPORT)
    assert integrity_check().ok
    Payment.objects.filter(pk=second.pk).update(needs_refund=False)
    assert "refund owed that nobody is asked to give back" in _rules(integrity_check())


def test_it_finds_a_transfer_never_decided_and_a_message_processed_without_an_outcome():
    BankTransfer.objects.create(
        source="webhook",
        external_id="FT-STUCK",
        amount=100_000,
        occurred_at=timezone.now(),
        received_at=timezone.now() - datetime.timedelta(minutes=10),
    )
    InboundMessage.objects.create(
        kind="transfer", dedupe_key="silent", body="{}", processed_at=timezone.now()
    )
    rules = _rules(integrity_check())
    assert "bank transfer never decided" in rules
    assert "processed inbound message without an outcome" in rules


def test_the_report_explains_messages_per_partner_kind_and_day_with_their_outcomes():
    for key, outcome in (("a", "matched"), ("b", "duplicate"), ("c", "duplicate")):
        InboundMessage.objects.create(
            kind="transfer",
            dedupe_key=key,
            body="{}",
            processed_at=timezone.now(),
            outcome=outcome,
        )
    InboundMessage.objects.create(kind="transfer", dedupe_key="d", body="{}")
    report = integrity_check()
    (row,) = report.inbox
    assert row["received"] == 4 and row["processed"] == 3 and row["in_flight"] == 1
    assert row["outcomes"] == {"duplicate": 2, "matched": 1}
    assert "duplicate 2, matched 1" in report.as_text()


def test_the_command_prints_json_for_monitoring():
    _settled()
    out = io.StringIO()
    call_command("check_integrity", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["ok"] is True and data["breaches"] == []
    assert data["totals"]["settled payments"] == 1
