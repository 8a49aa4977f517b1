"""Held money applied by an agent to a customer's unpaid bills (`services.credit_apply`).

Money we hold for a household (transfers kept for an agent, what a payment owes back) pays its
bills through a payment recorded settled, the one settle path; each credit gives what the bills
need and no more, once, and the books still add up (`integrity_check`).
"""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection

from customers.models import AuditEntry, Bill
from payments import services
from payments.integrity import integrity_check
from payments.models import BankTransfer, CreditUse, Payment
from tests.console import factories as console_factories
from tests.factories import customer_with_bills, staff_user

pytestmark = pytest.mark.django_db
Status = BankTransfer.Status
NEXT_MONTH = datetime.date(2030, 1, 1)


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.CREDIT_APPROVAL_ABOVE_VND = 2_000_000


def short_transfer(payment: Payment, amount: int) -> BankTransfer:
    """A transfer naming `payment` that brought the wrong amount, as matching keeps it."""
    transfer = console_factories.transfer(
        amount=amount, content=f"TIEN DIEN {payment.reference}", status=Status.WRONG_AMOUNT
    )
    transfer.payment = payment
    transfer.save(update_fields=["payment"])
    return transfer


def paid_by(bill: Bill) -> Payment:
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    return bill.paid_by


def assert_books_add_up() -> None:
    report = integrity_check()
    assert report.ok, report.as_text()


def test_two_short_credits_together_pay_a_bill(agent):
    """300.000 with the reference (too little), then the rest with a note matching nothing: the
    agent puts both onto the bill; both are used up and the bill is paid once."""
    customer, [bill] = customer_with_bills(unpaid=1, amounts=[452_160])
    started = console_factories.vietqr_payment(customer)
    first = short_transfer(started, 300_000)
    rest = console_factories.transfer(amount=152_160, content="CK TIEN DIEN NHA AN")

    held = services.credits_held(customer=customer, transfer_ids=[rest.pk])
    assert [(c.kind, c.pk, c.amount) for c in held] == [
        ("transfer", first.pk, 300_000),
        ("transfer", rest.pk, 152_160),
    ]
    payment = services.credit_apply(
        customer_code=customer.code,
        bill_numbers=[bill.number],
        transfer_ids=[first.pk, rest.pk],
        actor=agent,
        reason="Chủ hộ gọi điện: chuyển hai lần",
    )

    assert paid_by(bill) == payment
    assert payment.status == Payment.Status.SUCCEEDED and payment.amount == 452_160
    assert payment.method == Payment.Method.VIETQR and not payment.needs_refund
    assert sorted(payment.credits_in.values_list("transfer_id", "amount")) == sorted(
        [(first.pk, 300_000), (rest.pk, 152_160)]
    )
    for transfer in (first, rest):
        transfer.refresh_from_db()
        assert transfer.status == Status.APPLIED and transfer.resolved_by == agent
        assert payment.reference in transfer.reason
    assert services.credits_held(customer=customer, transfer_ids=[rest.pk]) == []
    entry = AuditEntry.objects.get(action="credit_apply")
    assert entry.actor == agent and entry.payment == payment and entry.customer == customer
    assert entry.detail["amount"] == 452_160 and entry.detail["bills"] == [bill.number]
    assert_books_add_up()


def test_what_the_bills_do_not_need_stays_held_and_can_be_given_back(agent, supervisor):
    customer, [bill] = customer_with_bills(unpaid=1, amounts=[452_160])
    transfer = console_factories.transfer(amount=1_000_000, content="IBFT TIEN DIEN")

    services.credit_apply(
        customer_code=customer.code,
        bill_numbers=[bill.number],
        transfer_ids=[transfer.pk],
        actor=agent,
        reason="Người nhà xác nhận",
    )

    transfer.refresh_from_db()
    assert transfer.status == Status.UNMATCHED and "547840 VND still held" in transfer.reason
    [held] = services.credits_held(customer=customer, transfer_ids=[transfer.pk])
    assert held.amount == 547_840
    # Matching the whole transfer to a payment would spend what already paid a bill.
    other, _ = customer_with_bills(unpaid=1, amounts=[1_000_000])
    payment = console_factories.vietqr_payment(other)
    with pytest.raises(services.InvalidTransition):
        services.transfer_assign(
            transfer_id=transfer.pk, payment_id=payment.pk, actor=agent, reason="nhầm"
        )
    services.transfer_resolve(
        transfer_id=transfer.pk, actor=supervisor, note="Đã hoàn 547.840 ₫ cho chủ hộ"
    )
    assert services.credits_held(customer=customer, transfer_ids=[transfer.pk]) == []
    assert_books_add_up()


def test_money_a_payment_owes_back_pays_another_bill(agent):
    """A second payment of a bill already paid owes its money back; part of it pays the
    customer's next bill instead, through the channel it came by, and it owes the rest."""
    refund = console_factories.payment_needing_refund()
    customer = refund.customer
    bill = console_factories.billed(customer, NEXT_MONTH, amount=200_000)

    payment = services.credit_apply(
        customer_code=customer.code,
        bill_numbers=[bill.number],
        payment_ids=[refund.pk],
        actor=agent,
        reason="Khách đồng ý trừ vào hóa đơn sau",
    )

    assert paid_by(bill) == payment
    assert (payment.method, payment.partner.code) == ("redirect", "SANDBOX")
    refund.refresh_from_db()
    assert refund.needs_refund and refund.refund_amount == 452_160 - 200_000
    event = refund.events.order_by("at", "id").last()
    assert event.detail == {"applied_to": payment.reference, "amount": 200_000}
    assert_books_add_up()
    # The rest pays nothing here: given back, the payment is refunded as before.
    services.payment_refund(payment_id=refund.pk, actor=agent, note="Hoàn phần còn lại")
    refund.refresh_from_db()
    assert not refund.needs_refund and refund.status == Payment.Status.REFUNDED
    assert_books_add_up()


def test_all_that_a_payment_owes_back_can_go_to_bills(agent):
    refund = console_factories.payment_needing_refund()
    customer = refund.customer
    bill = console_factories.billed(customer, NEXT_MONTH, amount=refund.refund_amount)
    services.credit_apply(
        customer_code=customer.code,
        bill_numbers=[bill.number],
        payment_ids=[refund.pk],
        actor=agent,
        reason="Trừ toàn bộ",
    )
    refund.refresh_from_db()
    assert not refund.needs_refund and refund.refund_amount == 0
    assert refund.status == Payment.Status.SUCCEEDED
    assert not services.credits_held(customer=customer)
    assert_books_add_up()


def test_above_the_threshold_only_a_supervisor_applies_money(agent, supervisor, settings):
    settings.CREDIT_APPROVAL_ABOVE_VND = 400_000
    customer, [bill] = customer_with_bills(unpaid=1, amounts=[452_160])
    transfer = console_factories.transfer(amount=452_160)
    kwargs = {
        "customer_code": customer.code,
        "bill_numbers": [bill.number],
        "transfer_ids": [transfer.pk],
        "reason": "Xác nhận qua điện thoại",
    }
    with pytest.raises(services.ApprovalRequired):
        services.credit_apply(actor=agent, **kwargs)
    bill.refresh_from_db()
    assert bill.status == Bill.Status.UNPAID and not CreditUse.objects.exists()
    assert not AuditEntry.objects.filter(action="credit_apply").exists()
    held = services.credits_held(customer=customer, transfer_ids=[transfer.pk])
    assert services.credit_plan(credits=held, total=452_160, actor=agent).needs_approval
    assert not services.credit_plan(credits=held, total=452_160, actor=supervisor).needs_approval

    payment = services.credit_apply(actor=supervisor, **kwargs)
    assert paid_by(bill) == payment
    assert AuditEntry.objects.get(action="credit_apply").actor == supervisor


def test_never_more_than_the_money_held_nor_bills_already_paid(agent):
    customer, bills = customer_with_bills(unpaid=2, amounts=[300_000, 200_000])
    transfer = console_factories.transfer(amount=400_000)
    with pytest.raises(services.NotEnoughCredit):
        services.credit_apply(
            customer_code=customer.code,
            bill_numbers=[bill.number for bill in bills],
            transfer_ids=[transfer.pk],
            actor=agent,
            reason="Hai tháng",
        )
    services.payment_record_cash(
        customer_code=customer.code, bill_numbers=[bills[0].number], actor=agent, note="quầy"
    )
    with pytest.raises(services.BillAlreadyPaid):
        services.credit_apply(
            customer_code=customer.code,
            bill_numbers=[bills[0].number],
            transfer_ids=[transfer.pk],
            actor=agent,
            reason="Tháng trước",
        )
    assert not CreditUse.objects.exists()
    assert services.credits_held(customer=customer, transfer_ids=[transfer.pk])[0].amount == 400_000


def test_only_money_held_for_this_customer(agent):
    customer, [bill] = customer_with_bills(unpaid=1, amounts=[452_160])
    neighbour, _ = customer_with_bills(unpaid=1, amounts=[452_160])
    theirs = short_transfer(console_factories.vietqr_payment(neighbour), 500_000)
    closed = console_factories.transfer(amount=500_000, status=Status.RESOLVED)
    for transfer in (theirs, closed):
        with pytest.raises(services.CreditNotHeld):
            services.credit_apply(
                customer_code=customer.code,
                bill_numbers=[bill.number],
                transfer_ids=[transfer.pk],
                actor=agent,
                reason="Nhầm khách",
            )
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.UNPAID


def test_the_same_confirmation_twice_applies_the_money_once(agent):
    customer, bills = customer_with_bills(unpaid=2, amounts=[200_000, 200_000])
    transfer = console_factories.transfer(amount=600_000)
    kwargs = {
        "customer_code": customer.code,
        "bill_numbers": [bills[0].number],
        "transfer_ids": [transfer.pk],
        "actor": agent,
        "reason": "Một tháng",
        "key": "d1f0c0a6-confirm",
    }
    first = services.credit_apply(**kwargs)
    again = services.credit_apply(**kwargs)
    assert again == first
    assert CreditUse.objects.count() == 1 and AuditEntry.objects.count() == 1
    with pytest.raises(services.InvalidTransition):
        services.credit_apply(**{**kwargs, "bill_numbers": [bills[1].number]})
    assert services.credits_held(customer=customer, transfer_ids=[transfer.pk])[0].amount == 400_000


def test_a_short_credit_an_agent_used_is_not_counted_again_by_matching(agent, client, settings):
    """A credit kept short for a payment, partly applied to another bill, no longer holds its
    amount: a later transfer for that payment is not made whole with it."""
    from tests.payments.test_matching import ACCOUNT, deliver, notification

    settings.TRANSFER_WEBHOOK_API_KEY = "test-transfer-key"
    settings.VIETQR_ACCOUNT = ACCOUNT
    customer, bills = customer_with_bills(unpaid=2, amounts=[452_160, 100_000])
    started = services.payment_start(
        customer_code=customer.code, method="vietqr", bill_numbers=[bills[0].number]
    ).payment
    short = short_transfer(started, 300_000)
    services.credit_apply(
        customer_code=customer.code,
        bill_numbers=[bills[1].number],
        transfer_ids=[short.pk],
        actor=agent,
        reason="Tháng sau",
    )
    later = deliver(client, notification(started, transferAmount=152_160))
    assert later.outcome == "wrong_amount"
    assert Payment.objects.get(pk=started.pk).status == Payment.Status.PENDING
    assert_books_add_up()


def test_short_credits_made_whole_by_matching_keep_the_books_adding_up(client, settings):
    from tests.payments.test_matching import ACCOUNT, deliver, notification

    settings.TRANSFER_WEBHOOK_API_KEY = "test-transfer-key"
    settings.VIETQR_ACCOUNT = ACCOUNT
    customer, _ = customer_with_bills(unpaid=1, amounts=[452_160])
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    deliver(client, notification(payment, transferAmount=100_000))
    deliver(client, notification(payment, transferAmount=352_160))
    assert BankTransfer.objects.filter(payment=payment, status=Status.MATCHED).count() == 2
    assert_books_add_up()


@pytest.mark.django_db(transaction=True)
def test_two_agents_applying_the_same_money_at_once_apply_it_once():
    """The transfer holds one bill's worth; two agents put it on two bills at the same moment:
    one pays its bill, the other is told the money is no longer there."""
    agents = [staff_user("agent"), staff_user("agent")]
    customer, bills = customer_with_bills(unpaid=2, amounts=[452_160, 452_160])
    transfer = console_factories.transfer(amount=452_160)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def apply(actor, bill) -> None:
        try:
            barrier.wait()
            services.credit_apply(
                customer_code=customer.code,
                bill_numbers=[bill.number],
                transfer_ids=[transfer.pk],
                actor=actor,
                reason="Cùng lúc",
            )
            outcomes.append("applied")
        except services.PaymentError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=apply, args=pair) for pair in zip(agents, bills, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["applied", "credit_not_held"]
    assert Bill.objects.filter(customer=customer, status=Bill.Status.PAID).count() == 1
    assert CreditUse.objects.get().amount == 452_160
    assert_books_add_up()
