"""Duplicates and races: banks say the same thing many times at once; money moves once.

Real PostgreSQL, a gunicorn serving the portal with DEBUG off, a real Celery worker on a private
Redis, and real sender threads over HTTP. Every scenario ends with `check_integrity`.
"""

from __future__ import annotations

import collections
import itertools
import time
from typing import Any

import pytest

from customers.models import Bill
from payments import services
from payments.models import BankTransfer, InboundMessage, Payment, PaymentEvent
from tests.conftest import wait_until
from tests.factories import customer_with_bills
from tests.reliability import books, traffic
from tests.reliability.support import Figures
from tests.sandbox.support import redirect_payment
from tests.sandbox.wallets import configure_wallets, wallet_payment

pytestmark = [pytest.mark.slow, pytest.mark.celery_worker]

Status = Payment.Status
PAYMENTS = 100
COPIES = 10


def test_a_hundred_payments_each_notified_ten_times_at_once_are_settled_once(portal_stack):
    figures = Figures("duplicate_ipns", "100 payments × 10 identical IPNs at once")
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    payments = [redirect_payment(amounts=[452_160 + i, 310_000]) for i in range(PAYMENTS)]
    messages = [
        traffic.ipn_params(payment, transaction_no=f"{14_000_000 + i}")
        for i, payment in enumerate(payments)
    ]
    groups = [
        [lambda params=params: traffic.send_ipn(web.url, params)] * COPIES for params in messages
    ]

    answers = traffic.fire_in_groups(groups, threads=50)

    # Of ten identical notifications only the one that stored the row is told 00.
    for codes in answers:
        assert sorted(codes) == ["00"] + ["02"] * (COPIES - 1), codes
    wait_until(books.all_processed, timeout=90, interval=0.25)
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).count() == PAYMENTS
    for payment in payments:
        assert PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED).count() == 1
        bills = Bill.objects.filter(customer=payment.customer)
        assert {bill.paid_by_id for bill in bills} == {payment.pk}
    lost, doubled = books.unsettled(payments), books.doubled()
    assert (lost, doubled) == (0, 0)
    tally = collections.Counter(itertools.chain.from_iterable(answers))
    books.close_books(
        figures,
        messages_sent=PAYMENTS * COPIES,
        duplicates=PAYMENTS * (COPIES - 1),
        faults_injected=0,
        lost=lost,
        doubled=doubled,
        answers=dict(sorted(tally.items())),
        payments=PAYMENTS,
    )


def test_wallet_notifications_ten_times_at_once_are_settled_once(portal_stack, settings):
    """MoMo's IPN and ZaloPay's callback, ten identical copies at once per payment. MoMo has one
    answer (204) for all ten, each stored once; ZaloPay's first copy to be stored is told 1, the
    nine others 2 (already processed)."""
    figures = Figures(
        "duplicate_wallet_notifications", "40 MoMo + 40 ZaloPay payments × 10 identical at once"
    )
    configure_wallets(settings)  # the processes under test have the same keys
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    momo = [wallet_payment("MOMO", amounts=[452_160 + i, 10_000]) for i in range(40)]
    zalopay = [wallet_payment("ZALOPAY", amounts=[310_000 + i]) for i in range(40)]
    bodies = [traffic.momo_result(p, trans_id=4_100_000_000 + i) for i, p in enumerate(momo)]
    callbacks = [
        traffic.zalopay_callback(p, zp_trans_id=260_201_000_100_000 + i)
        for i, p in enumerate(zalopay)
    ]
    groups = [[lambda body=body: traffic.send_momo_ipn(web.url, body)] * COPIES for body in bodies]
    groups += [
        [lambda body=body: traffic.send_zalopay_callback(web.url, body)] * COPIES
        for body in callbacks
    ]

    answers = traffic.fire_in_groups(groups, threads=50)

    for codes in answers[: len(momo)]:
        assert codes == ["204"] * COPIES, codes
    for codes in answers[len(momo) :]:
        assert sorted(codes) == ["zp1"] + ["zp2"] * (COPIES - 1), codes
    wait_until(books.all_processed, timeout=90, interval=0.25)
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.IPN).count() == 80
    for payment in momo + zalopay:
        assert PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED).count() == 1
        bills = Bill.objects.filter(customer=payment.customer)
        assert {bill.paid_by_id for bill in bills} == {payment.pk}
    lost, doubled = books.unsettled(momo + zalopay), books.doubled()
    assert (lost, doubled) == (0, 0)
    tally = collections.Counter(itertools.chain.from_iterable(answers))
    books.close_books(
        figures,
        messages_sent=80 * COPIES,
        duplicates=80 * (COPIES - 1),
        faults_injected=0,
        lost=lost,
        doubled=doubled,
        answers=dict(sorted(tally.items())),
        payments=80,
    )


def _vietqr_payment(index: int) -> Payment:
    customer, _bills = customer_with_bills(amounts=[300_000 + index, 152_160])
    return services.payment_start(customer_code=customer.code, method="vietqr").payment


def test_concurrent_transfer_notifications_apply_each_credit_once(portal_stack):
    """Per payment, fired together: the sender's retries of one id, other ids announcing the same
    credit (same bank reference), and for some payments a second, real credit (money sent
    twice), which must be kept for a refund, never applied and never dropped."""
    figures = Figures(
        "duplicate_transfers", "Transfer notifications: retries, re-sends, money twice"
    )
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    payments = [_vietqr_payment(i) for i in range(30)]
    twice = set(range(0, 30, 3))  # every third customer pays twice
    groups = []
    sent = collections.Counter()
    for index, payment in enumerate(payments):
        credit = f"FT26{index:06d}"
        retried = traffic.transfer_body(payment, reference_code=credit)
        bodies = [retried] * 5  # the sender retrying one id
        bodies += [traffic.transfer_body(payment, reference_code=credit) for _ in range(3)]
        sent["same id"] += 4
        sent["same credit, other id"] += 3
        if index in twice:
            bodies.append(traffic.transfer_body(payment, reference_code=f"FT27{index:06d}"))
            sent["second credit"] += 1
        groups.append([lambda body=body: traffic.send_transfer(web.url, body) for body in bodies])

    statuses = traffic.fire_in_groups(groups, threads=45)

    assert set(itertools.chain.from_iterable(statuses)) == {200}
    wait_until(books.all_processed, timeout=90, interval=0.25)
    # One inbox row per sender id: 1 + 3 per payment, + 1 where the money came twice.
    assert InboundMessage.objects.filter(kind="transfer").count() == 30 * 4 + len(twice)
    outcomes = collections.Counter(
        InboundMessage.objects.filter(kind="transfer").values_list("outcome", flat=True)
    )
    assert outcomes == {"matched": 30, "duplicate": 90, "needs_refund": len(twice)}, outcomes
    for index, payment in enumerate(payments):
        payment.refresh_from_db()
        assert payment.status == Status.SUCCEEDED and not payment.needs_refund
        transfers = collections.Counter(
            BankTransfer.objects.filter(payment=payment).values_list("status", flat=True)
        )
        expected = {"matched": 1, "needs_refund": 1} if index in twice else {"matched": 1}
        assert transfers == expected
    lost = books.unsettled(payments) + books.unprocessed()
    doubled = books.doubled()
    assert (lost, doubled) == (0, 0)
    total = sum(len(group) for group in groups)
    books.close_books(
        figures,
        messages_sent=total,
        duplicates=sent["same id"] + sent["same credit, other id"],
        faults_injected=0,
        lost=lost,
        doubled=doubled,
        money_received_twice_kept_for_refund=len(twice),
        inbox_outcomes=dict(outcomes),
        payments=len(payments),
    )


def test_a_bank_app_payment_racing_a_vietqr_transfer_pays_the_bill_once(portal_stack):
    """The customer pays the same bill in the bank's own app (collection API) and by VietQR at
    the same moment. One payment takes the bill; the other's money is kept for a refund."""
    figures = Figures("collection_vs_vietqr", "Bank-app payment racing a VietQR transfer")
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    rounds = 30
    cases = []
    for index in range(rounds):
        customer, bills = customer_with_bills(amounts=[400_000 + index])
        pending = services.payment_start(customer_code=customer.code, method="vietqr").payment
        notice = {
            "transaction_id": f"VCB-RACE-{index}",
            "customer_code": customer.code,
            "bill_numbers": [bills[0].number],
            "amount": bills[0].amount,
            "paid_at": pending.created_at.isoformat(),
        }
        cases.append((pending, bills[0], notice, traffic.transfer_body(pending)))

    def bank_app(notice: dict, delay: float) -> Any:
        # The transfer is applied by a worker a few milliseconds after it is stored; staggering
        # the bank app's notice across that window lets either side win some rounds.
        time.sleep(delay)
        return traffic.collection_post(web.url, "/api/v1/collection/payments/", notice)

    groups = [
        [
            lambda notice=notice, index=index: bank_app(notice, (index % 6) * 0.02),
            lambda body=body: traffic.send_transfer(web.url, body),
        ]
        for index, (_pending, _bill, notice, body) in enumerate(cases)
    ]

    # One round at a time, so the worker has no backlog and the race is close.
    results = traffic.fire_in_groups(groups, threads=2)

    wait_until(books.all_processed, timeout=60, interval=0.25)
    winners = collections.Counter()
    for (pending, bill, _notice, _body), (app_answer, transfer_status) in zip(
        cases, results, strict=True
    ):
        assert transfer_status == 200
        pending.refresh_from_db()
        bill.refresh_from_db()
        # Whoever lost, the VietQR money arrived and is accounted for: it settled the payment,
        # and if the bank app had taken the bill, it is owed back in full.
        assert pending.status == Status.SUCCEEDED
        if app_answer.status_code == 201:
            winners["bank app"] += 1
            assert str(bill.paid_by_id) == app_answer.json()["payment_id"]
            assert pending.needs_refund and pending.refund_amount == pending.amount
        else:
            winners["VietQR"] += 1
            assert app_answer.status_code == 409, app_answer.content
            assert app_answer.json()["error"]["code"] == "bill_already_paid"
            assert bill.paid_by_id == pending.pk and not pending.needs_refund
    lost = books.unsettled([case[0] for case in cases]) + books.unprocessed()
    doubled = books.doubled()
    assert (lost, doubled) == (0, 0)
    books.close_books(
        figures,
        messages_sent=2 * rounds,
        duplicates=0,
        faults_injected=0,
        lost=lost,
        doubled=doubled,
        rounds=rounds,
        bill_taken_by=dict(winners),
        refunds_flagged=winners["bank app"],
    )
