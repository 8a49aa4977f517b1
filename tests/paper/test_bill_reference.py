"""A paper bill's own reference: a transfer carrying it pays that bill, once, by the VietQR path."""

from __future__ import annotations

import pytest

from customers.models import Bill
from payments import matching, references, services
from payments.models import BankTransfer, Payment
from tests.factories import customer_with_bills
from tests.payments.test_matching import (  # the notification a bank sends, and its delivery
    _receiving_account,  # noqa: F401 - the autouse fixture of the receiving account
    deliver,
    notification,
    transfer_of,
)

pytestmark = pytest.mark.django_db


def _bill(amount=452_160):
    _customer, bills = customer_with_bills(unpaid=2, amounts=[amount, 210_000])
    return bills[0], bills[1]


def _paying(bill, *, amount=None, note="{ref}"):
    body = notification(None, transferAmount=amount or bill.amount)
    body["content"] = "MBVCB.3278.CT tu 0912345678 " + note.format(
        ref=references.bill_reference(bill.pk)
    )
    return body


def test_a_bill_reference_reads_back_to_its_bill_and_catches_a_typo():
    reference = references.bill_reference(467_636)
    assert len(reference) <= 25 and reference.startswith("HD")
    assert references.bill_id_of(reference) == 467_636
    assert set(reference) <= set(references.ALPHABET)
    typo = reference[:5] + ("A" if reference[5] != "A" else "B") + reference[6:]
    assert references.bill_id_of(typo) is None
    assert references.bill_id_of(references.generate()) is None  # a payment's is not a bill's
    # Neighbouring bills do not share all but their last characters (the ids are spread).
    first, second = references.bill_reference(1), references.bill_reference(2)
    assert first[:6] != second[:6]
    assert (
        len({references.bill_id_of(references.bill_reference(n)) for n in range(1, 5001)}) == 5000
    )


def test_a_reference_found_by_chance_beside_the_bills_own_does_not_hide_it(client):
    """ "HD-" typed before the reference makes another valid one, overlapping it, for one bill
    in 32 (the check character's odds): it names no payment and no bill, so the note still
    names one reference, and pays that bill."""
    bill, _other = _bill()
    bill_id = 1033  # a bill whose reference after "HD-" holds such a second one
    Bill.objects.filter(pk=bill.pk).update(id=bill_id)
    bill = Bill.objects.get(pk=bill_id)
    ref = references.bill_reference(bill_id)
    note = f"MBVCB.3278.HD-{ref[:6]}-{ref[6:]}.CT tu 0912345678"
    assert len(references.find_in(matching.fold_note(note))) == 2
    body = notification(None, transferAmount=bill.amount)
    body["content"] = note
    assert deliver(client, body).outcome == matching.MATCHED
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID


@pytest.mark.parametrize("note", ["{ref}", "thanh toan {lower} tien dien", "HD-{dashed}"])
def test_the_exact_amount_with_the_reference_anywhere_pays_that_bill_only(client, note):
    bill, other = _bill()
    ref = references.bill_reference(bill.pk)
    note = note.format(ref=ref, lower=ref.lower(), dashed=f"{ref[:6]}-{ref[6:]}")
    body = notification(None, transferAmount=bill.amount)
    body["content"] = f"MBVCB.3278.{note}.CT tu 0912345678"
    message = deliver(client, body)
    assert message.outcome == matching.MATCHED
    payment = Payment.objects.get(reference=ref)
    assert payment.method == Payment.Method.VIETQR and payment.status == Payment.Status.SUCCEEDED
    assert [line.bill_id for line in payment.lines.all()] == [bill.pk]
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.PAID
    assert Bill.objects.get(pk=other.pk).status == Bill.Status.UNPAID


def test_a_second_payer_of_the_same_bill_is_kept_for_a_refund_never_applied_twice(client):
    bill, _other = _bill()
    deliver(client, _paying(bill))
    second = deliver(client, _paying(bill))
    assert second.outcome == matching.NEEDS_REFUND
    assert transfer_of(second).status == BankTransfer.Status.NEEDS_REFUND
    payment = Payment.objects.get(reference=references.bill_reference(bill.pk))
    assert payment.events.filter(to_status="succeeded").count() == 1


def test_a_wrong_amount_waits_for_an_agent_and_the_bill_stays_unpaid(client):
    bill, _other = _bill()
    message = deliver(client, _paying(bill, amount=100_000))
    assert transfer_of(message).status == BankTransfer.Status.WRONG_AMOUNT
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.UNPAID
    assert Payment.objects.get(reference=references.bill_reference(bill.pk)).expires_at is None


def test_a_bill_paid_another_way_keeps_the_transfer_for_a_refund(client):
    bill, _other = _bill()
    started = services.payment_start(
        customer_code=bill.customer.code, method="vietqr", bill_numbers=[bill.number]
    ).payment
    deliver(client, notification(started))
    message = deliver(client, _paying(bill))
    assert "refund" in transfer_of(message).reason
    standing = Payment.objects.get(reference=references.bill_reference(bill.pk))
    assert standing.needs_refund and standing.refund_amount == bill.amount
    assert Bill.objects.get(pk=bill.pk).paid_by_id == started.pk
