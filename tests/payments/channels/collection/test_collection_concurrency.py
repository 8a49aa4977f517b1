"""Racing for one bill on the real PostgreSQL, from real threads: one payment wins, never two."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from customers.models import Bill
from payments import services
from payments.models import InboundMessage, Payment
from tests.factories import customer_with_bills
from tests.payments.channels.collection.test_collection_support import (
    PAYMENTS,
    notice,
    partner_secrets,  # noqa: F401 - fixture
    signed_post,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("partner_secrets"),
]
ROUNDS = 5


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment, each in its own thread with its own connection."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_partners_notifying_one_bill_at_once_pay_it_once():
    for round_ in range(ROUNDS):
        customer, bills = customer_with_bills(unpaid=1)
        from_vcb = notice(customer, bills, f"VCB-R{round_}")
        from_momo = notice(customer, bills, f"MOMO-R{round_}")
        vcb, momo = _race(
            lambda body=from_vcb: signed_post(Client(), PAYMENTS, body),
            lambda body=from_momo: signed_post(Client(), PAYMENTS, body, partner="MOMO"),
        )
        statuses = sorted([vcb.status_code, momo.status_code])
        assert statuses == [201, 409], (vcb.content, momo.content)
        winner, loser = (vcb, momo) if vcb.status_code == 201 else (momo, vcb)
        assert loser.json()["error"]["code"] == "bill_already_paid"
        bill = Bill.objects.get(pk=bills[0].pk)
        assert bill.is_paid and str(bill.paid_by_id) == winner.json()["payment_id"]
        assert Payment.objects.filter(lines__bill=bill).count() == 1
    assert InboundMessage.objects.filter(outcome="bill_already_paid").count() == ROUNDS


def test_the_same_notice_sent_twice_at_once_is_recorded_once():
    for round_ in range(ROUNDS):
        customer, bills = customer_with_bills(unpaid=2)
        body = notice(customer, bills, f"VCB-TWICE-{round_}")
        first, second = _race(
            lambda body=body: signed_post(Client(), PAYMENTS, body),
            lambda body=body: signed_post(Client(), PAYMENTS, body),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 201]
        assert first.json() == second.json()
        assert Payment.objects.filter(provider_txn_id=f"VCB-TWICE-{round_}").count() == 1


def test_a_bank_app_racing_a_vietqr_transfer_never_pays_a_bill_twice():
    for round_ in range(ROUNDS):
        customer, bills = customer_with_bills(unpaid=1)
        pending = services.payment_start(customer_code=customer.code, method="vietqr").payment
        from_vcb = notice(customer, bills, f"VCB-QR{round_}")
        notice_response, transfer_outcome = _race(
            lambda body=from_vcb: signed_post(Client(), PAYMENTS, body),
            lambda pending=pending: services.payment_mark_succeeded(
                payment_id=pending.id,
                report=services.Report(source=services.Source.TRANSFER),
                amount=pending.amount,
            ),
        )
        pending.refresh_from_db()
        bill = Bill.objects.get(pk=bills[0].pk)
        if notice_response.status_code == 201:
            # The bank app won: the transfer's money is flagged to be given back.
            assert transfer_outcome == services.Outcome.NEEDS_REFUND
            assert pending.needs_refund
            assert str(bill.paid_by_id) == notice_response.json()["payment_id"]
        else:
            # The transfer won: the bank app's notice is refused, nothing recorded for it.
            assert notice_response.status_code == 409
            assert transfer_outcome == services.Outcome.APPLIED
            assert bill.paid_by_id == pending.id
        assert Payment.objects.filter(lines__bill=bill, lines__applied=True).count() == 1
