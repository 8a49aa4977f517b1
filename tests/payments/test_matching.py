"""Matching bank credits to payments: every kind of transfer ends as a row with its reason."""

from __future__ import annotations

import datetime
import itertools
import json

import pytest
from django.utils import timezone

from common.localtime import GMT7
from customers.models import Bill
from payments import applier, inbox, matching, references, services
from payments.channels.transfers import notifications
from payments.models import BankTransfer, InboundMessage, Payment, PaymentEvent
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

KEY = "test-transfer-key"
ACCOUNT = "0011004321987"
Status = BankTransfer.Status
_numbers = itertools.count(50_000)


@pytest.fixture(autouse=True)
def _receiving_account(settings):
    settings.TRANSFER_WEBHOOK_API_KEY = KEY
    settings.VIETQR_BIN = "970436"
    settings.VIETQR_ACCOUNT = ACCOUNT


def _now_gmt7() -> str:
    return timezone.now().astimezone(GMT7).strftime(notifications.DATE_FORMAT)


def notification(payment: Payment | None = None, **overrides):
    """A SePay-shaped notification for `payment`, its note wrapped in a bank's own text."""
    reference = payment.reference if payment else "NOREFERENCE"
    number = next(_numbers)
    body = {
        "id": number,
        "gateway": "Vietcombank",
        "transactionDate": _now_gmt7(),
        "accountNumber": ACCOUNT,
        "code": None,
        "content": f"MBVCB.3278{number}.{reference}.CT tu 0912345678 NGUYEN VAN AN toi {ACCOUNT}",
        "transferType": "in",
        "transferAmount": payment.amount if payment else 100_000,
        "accumulated": 19_077_000,
        "subAccount": None,
        "referenceCode": f"FT26331{number}",
        "description": "",
    }
    body.update(overrides)
    return body


def deliver(client, body) -> InboundMessage:
    """POST the notification as the sender would, then let the inbox apply it."""
    response = client.post(
        "/callbacks/transfers/",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Apikey {KEY}"},
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True}
    message = InboundMessage.objects.get(dedupe_key=f"transfer:{body['id']}")
    applier.apply_one(message.pk)
    message.refresh_from_db()
    return message


def vietqr_payment(amounts=(452_160,)):
    customer, bills = customer_with_bills(unpaid=len(amounts), amounts=list(amounts))
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    return payment, bills


def transfer_of(message: InboundMessage) -> BankTransfer:
    return BankTransfer.objects.get(message=message)


def successes(payment: Payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count()


def test_a_transfer_with_the_reference_settles_the_payment_and_its_bills(client):
    payment, bills = vietqr_payment(amounts=(300_000, 152_160))
    body = notification(payment, transactionDate="2026-11-27 14:02:37")
    message = deliver(client, body)
    assert message.outcome == matching.MATCHED and message.payment_id == payment.pk
    transfer = transfer_of(message)
    assert transfer.status == Status.MATCHED and transfer.payment_id == payment.pk
    assert transfer.external_id == body["referenceCode"] and transfer.account_number == ACCOUNT
    assert transfer.source == BankTransfer.Source.WEBHOOK and transfer.partner.code == "VCB"
    # The bank's local time (GMT+7) is kept as an aware instant.
    assert transfer.occurred_at == datetime.datetime(2026, 11, 27, 7, 2, 37, tzinfo=datetime.UTC)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.succeeded_at == transfer.occurred_at
    assert all(
        bill.status == Bill.Status.PAID
        for bill in Bill.objects.filter(pk__in=[b.pk for b in bills])
    )
    event = payment.events.get(to_status="succeeded")
    assert event.source == PaymentEvent.Source.TRANSFER and event.message_id == message.pk


@pytest.mark.parametrize(
    "note",
    [
        "MBVCB.3278907687.{lower}.CT tu 0912345678 NGUYEN VAN AN toi 0011004321987",
        "IBFT {spaced} thanh toan tien dien",
        "Thanh toán hóa đơn tiền điện – mã: {lower}!",
        "{ref}-0912345678-NGUYEN VAN AN",
        "TKThe :0912345678, CT DEN:0011004321987 ND:{lower} FT26331123456789",
        "REM Tfr Ac: 123456 O@L_{ref}_Chuyen tien",
        "{dashed}",
    ],
)
def test_a_note_with_the_banks_own_text_and_a_lower_cased_reference_still_matches(client, note):
    payment, _ = vietqr_payment()
    ref = payment.reference
    content = note.format(
        ref=ref,
        lower=ref.lower(),
        spaced=f"{ref[:3]} {ref[3:7].lower()} {ref[7:]}",
        dashed=f"{ref[:3]}-{ref[3:7]}-{ref[7:]}".lower(),
    )
    message = deliver(client, notification(payment, content=content))
    assert message.outcome == matching.MATCHED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_a_reference_with_a_wrong_check_character_is_matched_to_nobody(client):
    payment, bills = vietqr_payment()
    ref = payment.reference
    typo = ref[:-1] + next(ch for ch in references.ALPHABET if ch != ref[-1])
    message = deliver(client, notification(payment, content=f"thanh toan {typo}"))
    assert message.outcome == matching.UNMATCHED
    transfer = transfer_of(message)
    assert transfer.status == Status.UNMATCHED and transfer.payment is None
    assert transfer.reason == "No valid payment reference in the note."
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert not Bill.objects.filter(pk=bills[0].pk, status=Bill.Status.PAID).exists()


def test_a_valid_reference_that_names_no_payment_waits_for_an_agent(client):
    unknown = references.generate()
    message = deliver(client, notification(content=f"CT {unknown}"))
    transfer = transfer_of(message)
    assert message.outcome == matching.UNMATCHED
    assert transfer.status == Status.UNMATCHED and unknown in transfer.reason


def test_a_note_without_any_reference_waits_for_an_agent(client):
    message = deliver(client, notification(content="chuyen tien dien thang 10"))
    assert transfer_of(message).status == Status.UNMATCHED
    assert BankTransfer.objects.get().amount == 100_000


@pytest.mark.parametrize("delta", [-1, 1, -100_000, 452_160])
def test_a_wrong_amount_waits_for_an_agent_and_leaves_the_payment_alone(client, delta):
    payment, bills = vietqr_payment()
    message = deliver(client, notification(payment, transferAmount=payment.amount + delta))
    assert message.outcome == matching.WRONG_AMOUNT and message.payment_id == payment.pk
    transfer = transfer_of(message)
    assert transfer.status == Status.WRONG_AMOUNT and transfer.payment_id == payment.pk
    assert str(payment.amount) in transfer.reason and str(payment.amount + delta) in transfer.reason
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING and not payment.needs_review
    assert Bill.objects.get(pk=bills[0].pk).status == Bill.Status.UNPAID
    assert successes(payment) == 0


def test_a_transfer_after_expiry_still_settles(client):
    payment, bills = vietqr_payment()
    later = payment.expires_at + datetime.timedelta(minutes=5)
    services.payment_expire(payment_id=payment.pk, now=later)
    message = deliver(client, notification(payment))
    assert message.outcome == matching.MATCHED_LATE
    transfer = transfer_of(message)
    assert transfer.status == Status.MATCHED and "expired" in transfer.reason
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Bill.objects.get(pk=bills[0].pk).status == Bill.Status.PAID
    assert payment.events.filter(from_status="expired", to_status="succeeded").count() == 1


def test_a_second_transfer_for_a_settled_payment_is_money_to_give_back(client):
    payment, bills = vietqr_payment()
    first = deliver(client, notification(payment))
    second = deliver(client, notification(payment))
    assert first.outcome == matching.MATCHED
    assert second.outcome == matching.NEEDS_REFUND and second.payment_id == payment.pk
    transfer = transfer_of(second)
    assert transfer.status == Status.NEEDS_REFUND and transfer.payment_id == payment.pk
    assert "twice" in transfer.reason
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and successes(payment) == 1
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk


def test_the_same_credit_announced_under_two_sender_ids_is_one_transfer(client):
    payment, _ = vietqr_payment()
    body = notification(payment)
    first = deliver(client, body)
    again = deliver(client, {**body, "id": body["id"] + 7})
    assert first.outcome == matching.MATCHED and again.outcome == matching.DUPLICATE
    assert BankTransfer.objects.count() == 1 and successes(payment) == 1
    assert "applied once" in again.outcome_detail


def test_an_outgoing_transfer_is_recorded_and_ignored(client):
    payment, _ = vietqr_payment()
    message = deliver(client, notification(payment, transferType="out"))
    assert message.outcome == matching.IGNORED
    assert transfer_of(message).status == Status.IGNORED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_a_transfer_to_another_account_is_recorded_but_not_settled(client):
    payment, _ = vietqr_payment()
    message = deliver(client, notification(payment, accountNumber="9999888877"))
    assert message.outcome == matching.FOREIGN_ACCOUNT
    transfer = transfer_of(message)
    assert transfer.status == Status.UNMATCHED and "9999888877" in transfer.reason
    assert transfer.account_number == "9999888877"
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_without_a_bank_reference_the_senders_id_names_the_transfer(client):
    payment, _ = vietqr_payment()
    body = notification(payment, referenceCode=None)
    message = deliver(client, body)
    assert transfer_of(message).external_id == f"sepay:{body['id']}"
    assert message.outcome == matching.MATCHED


def test_money_that_arrives_after_a_cancel_still_pays_the_bills(client):
    """The household cancelled, then the transfer it had already sent arrived: the bill is paid,
    as for an expired payment; nothing waits for an agent."""
    payment, bills = vietqr_payment()
    services.payment_cancel(payment_id=payment.pk, report=services.Report(source="api"))
    message = deliver(client, notification(payment))
    assert message.outcome == matching.MATCHED_LATE
    assert "after it was cancelled" in message.outcome_detail
    assert transfer_of(message).status == Status.MATCHED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert payment.events.get(to_status="succeeded").from_status == Payment.Status.CANCELLED
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk


def test_money_after_a_cancel_for_bills_paid_meanwhile_is_kept_for_a_refund(client, agent):
    payment, bills = vietqr_payment()
    services.payment_cancel(payment_id=payment.pk, report=services.Report(source="api"))
    cash = services.payment_record_cash(
        customer_code=payment.customer.code, bill_numbers=[bills[0].number], actor=agent
    )
    message = deliver(client, notification(payment))
    assert message.outcome == matching.MATCHED_LATE
    payment.refresh_from_db()
    assert payment.needs_refund and payment.refund_amount == payment.amount
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == cash.pk  # paid once, by the cash


def test_a_transfer_naming_a_bank_redirect_payment_does_not_settle_it(client):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(
        customer_code=customer.code, method="redirect", partner_code="SANDBOX"
    ).payment
    message = deliver(client, notification(payment))
    assert message.outcome == matching.UNMATCHED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING


def test_bills_paid_meanwhile_at_the_counter_leave_a_refund_on_the_payment(client, agent):
    payment, bills = vietqr_payment()
    cash = services.payment_record_cash(
        customer_code=payment.customer.code, bill_numbers=[bills[0].number], actor=agent
    )
    message = deliver(client, notification(payment))
    assert message.outcome == matching.MATCHED
    assert "refund" in transfer_of(message).reason
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and payment.needs_refund
    assert payment.refund_amount == payment.amount
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == cash.pk


def test_a_note_naming_two_payments_goes_to_the_one_with_the_amount(client):
    first, _ = vietqr_payment(amounts=(100_000,))
    second, _ = vietqr_payment(amounts=(200_000,))
    content = f"{first.reference} {second.reference}"
    message = deliver(client, notification(second, content=content))
    assert message.outcome == matching.MATCHED and message.payment_id == second.pk
    ambiguous = deliver(client, notification(first, content=content, transferAmount=5))
    assert ambiguous.outcome == matching.UNMATCHED
    assert "several" in transfer_of(ambiguous).reason


def test_a_stored_message_that_cannot_be_read_is_kept_and_marked(client):
    message, _ = inbox.inbox_store(
        kind=InboundMessage.Kind.TRANSFER, dedupe_key="transfer:broken", body="{oops"
    )
    assert applier.apply_one(message.pk) == matching.REJECTED
    message.refresh_from_db()
    assert message.processed_at is not None and BankTransfer.objects.count() == 0


def test_processing_a_message_twice_applies_it_once(client):
    payment, _ = vietqr_payment()
    message = deliver(client, notification(payment))
    assert applier.apply_one(message.pk) == matching.MATCHED
    assert BankTransfer.objects.count() == 1 and successes(payment) == 1


def test_money_that_arrives_short_is_made_whole_by_a_second_transfer(client):
    """100.000 of 452.160 first (kept for an agent, the payment untouched), then the rest with
    the same note: together they bring the exact amount, and the bills are paid once."""
    payment, bills = vietqr_payment()
    short = deliver(client, notification(payment, transferAmount=100_000))
    assert short.outcome == matching.WRONG_AMOUNT
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    rest = deliver(client, notification(payment, transferAmount=payment.amount - 100_000))
    assert rest.outcome == matching.MATCHED and "together with" in rest.outcome_detail
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and not payment.needs_refund
    assert Bill.objects.get(pk=bills[0].pk).paid_by_id == payment.pk
    assert {transfer_of(short).status, transfer_of(rest).status} == {Status.MATCHED}
    assert payment.events.filter(to_status="succeeded").count() == 1


def test_a_second_transfer_that_does_not_make_the_amount_leaves_both_for_an_agent(client):
    payment, _ = vietqr_payment()
    deliver(client, notification(payment, transferAmount=100_000))
    again = deliver(client, notification(payment, transferAmount=100_000))
    assert again.outcome == matching.WRONG_AMOUNT
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    assert BankTransfer.objects.filter(status=Status.WRONG_AMOUNT).count() == 2
