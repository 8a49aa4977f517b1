"""The payment state machine: every transition, every refusal, and what each leaves behind."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError
from django.utils import timezone

from customers.models import Bill
from payments import services
from payments.models import Payment, PaymentBill, PaymentEvent
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

Status = Payment.Status
IPN = services.Report(source=services.Source.IPN)


def _start(customer, **kwargs):
    return services.payment_start(customer_code=customer.code, method="vietqr", **kwargs).payment


def _start_by_bank(customer):
    """A second payment of the same bills: by another method, since a second start by the same
    method is handed the open first one."""
    return services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment


def test_it_creates_a_pending_payment_for_all_unpaid_bills():
    customer, bills = customer_with_bills(unpaid=2, amounts=[300_000, 150_000])
    payment = _start(customer)
    assert payment.status == Status.PENDING
    assert payment.amount == 450_000
    assert payment.expires_at - payment.created_at == datetime.timedelta(minutes=15)
    assert set(payment.lines.values_list("bill_id", flat=True)) == {b.id for b in bills}
    event = payment.events.get()
    assert (event.from_status, event.to_status) == ("created", "pending")


def test_it_pays_only_the_named_bills():
    customer, bills = customer_with_bills(unpaid=3)
    payment = _start(customer, bill_numbers=[bills[0].number])
    assert payment.amount == bills[0].amount
    assert list(payment.lines.values_list("bill__number", flat=True)) == [bills[0].number]


def test_it_refuses_unknown_customers_bills_of_others_and_nothing_to_pay():
    customer, _ = customer_with_bills(unpaid=1)
    other, other_bills = customer_with_bills(unpaid=1)
    with pytest.raises(services.CustomerNotFound):
        services.payment_start(customer_code="PA14HT9999999", method="vietqr")
    with pytest.raises(services.BillNotFound):
        _start(customer, bill_numbers=[other_bills[0].number])
    paid = _start(other)
    services.payment_mark_succeeded(payment_id=paid.id, report=IPN)
    with pytest.raises(services.NothingToPay):
        _start(other)
    with pytest.raises(services.BillAlreadyPaid):
        _start(other, bill_numbers=[other_bills[0].number])
    assert Payment.objects.count() == 1


def test_success_marks_every_bill_paid_and_repeats_are_no_ops():
    customer, bills = customer_with_bills(unpaid=2)
    payment = _start(customer)
    outcome = services.payment_mark_succeeded(
        payment_id=payment.id, report=IPN, amount=payment.amount, provider_txn_id="T1"
    )
    assert outcome == services.Outcome.APPLIED
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == "T1"
    for bill in Bill.objects.filter(id__in=[b.id for b in bills]):
        assert bill.status == "paid" and bill.paid_by_id == payment.id and bill.paid_at
    again = services.payment_mark_succeeded(payment_id=payment.id, report=IPN, provider_txn_id="T1")
    assert again == services.Outcome.ALREADY_DONE
    assert payment.events.filter(to_status="succeeded").count() == 1


def test_a_wrong_amount_changes_nothing():
    customer, bills = customer_with_bills(unpaid=1)
    payment = _start(customer)
    with pytest.raises(services.AmountMismatch):
        services.payment_mark_succeeded(payment_id=payment.id, report=IPN, amount=1)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert Bill.objects.get(id=bills[0].id).status == "unpaid"


def test_a_bill_paid_through_two_payments_leaves_exactly_one_needs_refund():
    customer, bills = customer_with_bills(unpaid=1)
    first, second = _start(customer), _start_by_bank(customer)
    services.payment_mark_succeeded(payment_id=first.id, report=IPN)
    outcome = services.payment_mark_succeeded(payment_id=second.id, report=IPN)
    assert outcome == services.Outcome.NEEDS_REFUND
    second.refresh_from_db()
    assert second.status == Status.SUCCEEDED
    assert second.needs_refund and second.refund_amount == second.amount
    assert Payment.objects.filter(needs_refund=True).count() == 1
    assert Bill.objects.get(id=bills[0].id).paid_by_id == first.id
    assert PaymentBill.objects.filter(bill=bills[0], applied=True).count() == 1


def test_the_database_refuses_a_second_applied_line_for_one_bill():
    customer, bills = customer_with_bills(unpaid=1)
    first, second = _start(customer), _start_by_bank(customer)
    services.payment_mark_succeeded(payment_id=first.id, report=IPN)
    with pytest.raises(IntegrityError):
        PaymentBill.objects.filter(payment=second).update(applied=True)


def test_a_late_confirmation_after_expiry_still_settles():
    customer, bills = customer_with_bills(unpaid=1)
    payment = _start(customer)
    later = payment.expires_at + datetime.timedelta(seconds=1)
    assert services.payments_expire_stale(now=later) == 1
    payment.refresh_from_db()
    assert payment.status == Status.EXPIRED
    services.payment_mark_succeeded(payment_id=payment.id, report=IPN, amount=payment.amount)
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED
    assert Bill.objects.get(id=bills[0].id).is_paid


def test_expiry_waits_for_the_deadline_and_skips_settled_payments():
    customer, _ = customer_with_bills(unpaid=1)
    payment = _start(customer)
    with pytest.raises(services.InvalidTransition):
        services.payment_expire(payment_id=payment.id)
    services.payment_mark_succeeded(payment_id=payment.id, report=IPN)
    assert services.payments_expire_stale(now=timezone.now() + datetime.timedelta(hours=1)) == 0


def test_failure_after_success_is_recorded_and_flagged_never_applied():
    customer, bills = customer_with_bills(unpaid=1)
    payment = _start(customer)
    services.payment_mark_succeeded(payment_id=payment.id, report=IPN)
    outcome = services.payment_mark_failed(payment_id=payment.id, report=IPN, reason="24")
    assert outcome == services.Outcome.FLAGGED
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.needs_review
    assert Bill.objects.get(id=bills[0].id).is_paid
    assert payment.events.filter(detail__has_key="flagged").count() == 1


def test_success_after_failure_is_flagged_for_an_agent():
    customer, bills = customer_with_bills(unpaid=1)
    payment = _start(customer)
    services.payment_mark_failed(payment_id=payment.id, report=IPN, reason="51")
    outcome = services.payment_mark_succeeded(payment_id=payment.id, report=IPN)
    assert outcome == services.Outcome.FLAGGED
    payment.refresh_from_db()
    assert payment.status == Status.FAILED and payment.needs_review
    assert not Bill.objects.get(id=bills[0].id).is_paid


def test_cancel_only_pending_payments():
    customer, _ = customer_with_bills(unpaid=1)
    payment = _start(customer)
    report = services.Report(source=services.Source.API)
    assert services.payment_cancel(payment_id=payment.id, report=report) == "applied"
    assert services.payment_cancel(payment_id=payment.id, report=report) == "already_done"
    done = _start(customer)
    services.payment_mark_succeeded(payment_id=done.id, report=IPN)
    with pytest.raises(services.InvalidTransition):
        services.payment_cancel(payment_id=done.id, report=report)


def test_refund_needs_the_flag_and_a_note_and_is_audited(supervisor):
    customer, _ = customer_with_bills(unpaid=1)
    first, second = _start(customer), _start_by_bank(customer)
    services.payment_mark_succeeded(payment_id=first.id, report=IPN)
    services.payment_mark_succeeded(payment_id=second.id, report=IPN)
    with pytest.raises(services.InvalidTransition):
        services.payment_refund(payment_id=first.id, actor=supervisor, note="returned")
    with pytest.raises(services.PaymentError):
        services.payment_refund(payment_id=second.id, actor=supervisor, note=" ")
    services.payment_refund(payment_id=second.id, actor=supervisor, note="Hoàn tiền qua VCB")
    second.refresh_from_db()
    assert second.status == Status.REFUNDED and not second.needs_refund
    entry = supervisor.audit_entries.get()
    assert entry.action == "payment_refund" and entry.payment_id == second.id


def test_reversal_makes_the_bills_unpaid_again():
    customer, bills = customer_with_bills(unpaid=2)
    payment = services.payment_record_settled(
        customer_code=customer.code,
        method="collection",
        partner_code="SANDBOX",
        bill_numbers=[b.number for b in bills],
        report=services.Report(source=services.Source.COLLECTION),
        provider_txn_id="SBX-1",
        amount=sum(b.amount for b in bills),
    )
    assert payment.status == Status.SUCCEEDED
    report = services.Report(source=services.Source.COLLECTION)
    services.payment_reverse(payment_id=payment.id, report=report, reason="customer request")
    payment.refresh_from_db()
    assert payment.status == Status.REVERSED
    assert not Bill.objects.filter(id__in=[b.id for b in bills], status="paid").exists()
    assert services.payment_reverse(payment_id=payment.id, report=report, reason="x") == (
        "already_done"
    )


def test_settled_channels_refuse_paid_bills_and_wrong_amounts(agent):
    customer, bills = customer_with_bills(unpaid=1)
    with pytest.raises(services.AmountMismatch):
        services.payment_record_settled(
            customer_code=customer.code,
            method="collection",
            partner_code="SANDBOX",
            bill_numbers=[bills[0].number],
            report=services.Report(source=services.Source.COLLECTION),
            amount=bills[0].amount + 1,
        )
    cash = services.payment_record_cash(
        customer_code=customer.code, bill_numbers=[bills[0].number], actor=agent, note="quầy 1"
    )
    assert cash.status == Status.SUCCEEDED and cash.partner.code == "COUNTER"
    assert agent.audit_entries.get().action == "cash_payment"
    with pytest.raises(services.BillAlreadyPaid):
        services.payment_record_cash(
            customer_code=customer.code, bill_numbers=[bills[0].number], actor=agent
        )


def test_events_are_append_only():
    customer, _ = customer_with_bills(unpaid=1)
    event = _start(customer).events.get()
    event.detail = {"tampered": True}
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    assert PaymentEvent.objects.count() == 1


def _transfer(amount, **kwargs):
    from payments.models import BankTransfer

    return BankTransfer.objects.create(
        source="webhook",
        external_id=kwargs.pop("external_id", "FT1"),
        account_number="0011004321987",
        amount=amount,
        content="chuyen tien dien",
        occurred_at=timezone.now(),
        status=kwargs.pop("status", "unmatched"),
        **kwargs,
    )


def test_an_agent_assigns_an_unmatched_transfer_to_its_payment(agent):
    customer, bills = customer_with_bills(unpaid=1)
    payment = _start(customer)
    transfer = _transfer(payment.amount)
    with pytest.raises(services.PaymentError):
        services.transfer_assign(
            transfer_id=transfer.id, payment_id=payment.id, actor=agent, reason=""
        )
    services.transfer_assign(
        transfer_id=transfer.id, payment_id=payment.id, actor=agent, reason="khách gọi điện"
    )
    transfer.refresh_from_db()
    payment.refresh_from_db()
    assert transfer.status == "matched" and transfer.payment_id == payment.id
    assert payment.status == Status.SUCCEEDED
    assert agent.audit_entries.get().action == "transfer_assign"
    with pytest.raises(services.InvalidTransition):
        services.transfer_assign(
            transfer_id=transfer.id, payment_id=payment.id, actor=agent, reason="again"
        )


def test_a_wrong_amount_transfer_cannot_be_assigned_but_can_be_resolved(agent):
    customer, _ = customer_with_bills(unpaid=1)
    payment = _start(customer)
    transfer = _transfer(payment.amount - 1000, status="wrong_amount")
    with pytest.raises(services.AmountMismatch):
        services.transfer_assign(
            transfer_id=transfer.id, payment_id=payment.id, actor=agent, reason="thiếu tiền"
        )
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    services.transfer_resolve(transfer_id=transfer.id, actor=agent, note="đã hoàn lại cho khách")
    transfer.refresh_from_db()
    assert transfer.status == "resolved" and transfer.resolved_by == agent
    assert agent.audit_entries.get().action == "transfer_resolve"


def test_the_same_report_repeated_is_recorded_each_time_but_flags_the_reason_once():
    customer, _ = customer_with_bills(unpaid=1)
    payment = _start(customer)
    services.payment_mark_failed(payment_id=payment.id, report=IPN, reason="51")
    for _ in range(3):  # e.g. the poller asking the bank again
        services.payment_mark_succeeded(payment_id=payment.id, report=IPN)
    services.payment_mark_failed(payment_id=payment.id, report=IPN, reason="51")
    payment.refresh_from_db()
    assert payment.review_reason == "The bank reported success for a failed payment."
    assert payment.events.filter(detail__has_key="flagged").count() == 3


def test_a_second_start_of_the_same_bills_and_method_returns_the_open_payment():
    customer, bills = customer_with_bills(unpaid=2)
    first = services.payment_start(customer_code=customer.code, method="vietqr")
    again = services.payment_start(
        customer_code=customer.code, method="vietqr", bill_numbers=[b.number for b in bills]
    )
    assert first.created and not again.created
    assert again.payment.id == first.payment.id
    assert Payment.objects.count() == 1


def test_payments_holding_names_the_open_payments_another_start_would_not_take_up():
    customer, bills = customer_with_bills(unpaid=2)
    older = _start(customer, bill_numbers=[bills[0].number])
    whole = _start(customer)

    def holding(method="vietqr", partner=None, numbers=None):
        return services.payments_holding(
            customer_code=customer.code,
            method=method,
            partner_code=partner,
            bill_numbers=numbers,
        )

    # By the bank's page: both hold some of the bills, newest first.
    assert holding("redirect", "SANDBOX") == [whole, older]
    # By VietQR for all: `whole` would be handed back; `older` still holds the first bill.
    assert holding() == [older]
    assert holding(numbers=[bills[1].number]) == [whole]
    services.payment_cancel(payment_id=older.pk, report=IPN)
    Payment.objects.filter(pk=whole.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert holding("redirect", "SANDBOX") == []
    # A start the service would refuse holds nothing here: it is refused there.
    assert holding("redirect", "NOSUCHBANK") == []
    assert services.payments_holding(customer_code="PA00NOSUCH0001", method="vietqr") == []
