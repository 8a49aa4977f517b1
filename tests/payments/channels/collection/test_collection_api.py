"""The collection API's three operations, as docs/interfaces.md describes them."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from common.localtime import GMT7
from customers.models import Bill
from payments import services
from payments.channels.collection import auth
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.factories import BillFactory, CustomerFactory, customer_with_bills
from tests.payments.channels.collection.test_collection_support import (
    INQUIRY,
    PAYMENTS,
    REVERSALS,
    encode,
    notice,
    partner_secrets,  # noqa: F401 - fixture
    post,
    signed_headers,
    signed_post,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("partner_secrets")]


@pytest.fixture
def client() -> Client:
    return Client()


def _error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]["code"]


# --- Inquiry ------------------------------------------------------------------------------------
def test_an_inquiry_lists_the_unpaid_bills_oldest_first_with_the_full_name(client):
    customer, bills = customer_with_bills(unpaid=3, amounts=[300_000, 200_000, 100_000])
    paid = bills[1]
    services.payment_record_settled(
        customer_code=customer.code,
        method=Payment.Method.COLLECTION,
        partner_code="MOMO",
        bill_numbers=[paid.number],
        report=services.Report(source=services.Source.COLLECTION),
    )
    response = signed_post(client, INQUIRY, {"customer_code": f" {customer.code.lower()} "})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "customer_code": customer.code,
        "customer_name": "Nguyễn Văn An",
        "bills": [
            {
                "number": bill.number,
                "period": f"{bill.period:%Y-%m}",
                "amount": bill.amount,
                "due_date": bill.due_date.isoformat(),
            }
            for bill in (bills[0], bills[2])
        ],
        "total_due": 400_000,
    }


def test_an_inquiry_for_a_customer_who_owes_nothing_has_no_bills(client):
    customer = CustomerFactory()
    body = signed_post(client, INQUIRY, {"customer_code": customer.code}).json()
    assert body["bills"] == [] and body["total_due"] == 0


def test_an_inquiry_for_an_unknown_or_malformed_code(client):
    unknown = signed_post(client, INQUIRY, {"customer_code": "PA14HT9999999"})
    assert unknown.status_code == 404 and _error_code(unknown) == "customer_not_found"
    malformed = signed_post(client, INQUIRY, {"customer_code": "12"})
    assert malformed.status_code == 400 and _error_code(malformed) == "invalid_customer_code"
    inactive = CustomerFactory(is_active=False)
    gone = signed_post(client, INQUIRY, {"customer_code": inactive.code})
    assert gone.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"[" * 5000,
        b'{"customer_code": ["PA14HT0000001"]}',
        b"\x00\xff",
    ],
)
def test_malformed_bodies_get_400_and_are_kept(client, body):
    response = post(client, INQUIRY, body, signed_headers(body, INQUIRY))
    assert response.status_code == 400, response.content
    assert _error_code(response) in {"malformed_request", "invalid_request"}
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.INQUIRY)
    assert message.response_status == 400 and message.signature_valid is True


def test_every_request_and_answer_is_kept_in_the_inbox(client):
    customer, bills = customer_with_bills(unpaid=1)
    signed_post(client, INQUIRY, {"customer_code": customer.code})
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-INBOX-1"))
    signed_post(client, REVERSALS, {"transaction_id": "VCB-INBOX-1", "reason": "test"})
    signed_post(client, INQUIRY, {"customer_code": customer.code}, secret="wrong")
    rows = list(InboundMessage.objects.order_by("received_at", "id"))
    assert [row.kind for row in rows] == ["inquiry", "collection", "reversal", "inquiry"]
    assert [row.response_status for row in rows] == [200, 201, 200, 401]
    assert all(row.processed_at and row.body and row.headers["X-Partner-Code"] for row in rows)
    assert rows[1].payment is not None and rows[1].outcome == "accepted"
    assert rows[1].dedupe_key == "collection:collection:VCB:txn:VCB-INBOX-1"
    assert "X-Signature" in rows[0].headers
    # Nothing is left for the inbox worker: these were answered in the request.
    assert not InboundMessage.objects.filter(processed_at__isnull=True).exists()


# --- Payment notice -----------------------------------------------------------------------------
def test_a_payment_notice_pays_exactly_the_named_bills(client):
    customer, bills = customer_with_bills(unpaid=3)
    response = signed_post(client, PAYMENTS, notice(customer, bills[:2], "VCB-0001"))
    assert response.status_code == 201, response.content
    body = response.json()
    payment = Payment.objects.get(pk=body["payment_id"])
    assert body == {
        "status": "accepted",
        "payment_id": str(payment.id),
        "receipt_number": payment.reference,
    }
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.method == Payment.Method.COLLECTION and payment.partner.code == "VCB"
    assert payment.provider_txn_id == "VCB-0001"
    assert payment.amount == bills[0].amount + bills[1].amount
    for bill in bills:
        bill.refresh_from_db()
    assert [bill.is_paid for bill in bills] == [True, True, False]
    assert bills[0].paid_by_id == payment.id
    event = payment.events.filter(to_status=Payment.Status.SUCCEEDED).get()
    assert event.source == PaymentEvent.Source.COLLECTION and event.message is not None


def test_paid_at_is_the_partners_time_and_gmt7_without_an_offset(client):
    customer, bills = customer_with_bills(unpaid=1)
    local = (timezone.now() - timedelta(hours=1)).astimezone(GMT7).replace(microsecond=0)
    naive = local.replace(tzinfo=None).isoformat()
    response = signed_post(client, PAYMENTS, notice(customer, bills, "VCB-TZ", paid_at=naive))
    assert response.status_code == 201, response.content
    payment = Payment.objects.get(provider_txn_id="VCB-TZ")
    assert payment.succeeded_at == local


def test_the_same_notice_again_gets_the_same_answer_with_200(client):
    customer, bills = customer_with_bills(unpaid=2)
    body = notice(customer, bills, "VCB-0002")
    first = signed_post(client, PAYMENTS, body)
    assert first.status_code == 201
    # A retry: new timestamp and signature, keys in another order, bills in another order.
    retry = dict(reversed(list(body.items())))
    retry["bill_numbers"] = list(reversed(body["bill_numbers"]))
    again = signed_post(client, PAYMENTS, retry, timestamp=int(time.time()) - 5)
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.filter(provider_txn_id="VCB-0002").count() == 1
    repeat = InboundMessage.objects.get(outcome="repeat")
    assert repeat.response_status == 200
    assert str(repeat.payment_id) == first.json()["payment_id"]


def test_a_replayed_notice_has_no_second_effect(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = encode(notice(customer, bills, "VCB-0003"))
    headers = signed_headers(body, PAYMENTS)
    first = post(client, PAYMENTS, body, headers)
    replays = [post(client, PAYMENTS, body, headers) for _ in range(3)]
    assert first.status_code == 201
    assert {r.status_code for r in replays} == {200}
    assert all(r.json() == first.json() for r in replays)
    assert Payment.objects.count() == 1
    assert PaymentEvent.objects.filter(to_status=Payment.Status.SUCCEEDED).count() == 1
    # The first replay is kept once under its signature; later copies of it are the same row.
    assert InboundMessage.objects.filter(kind=InboundMessage.Kind.COLLECTION).count() == 2


def test_a_replay_is_refused_once_its_timestamp_is_stale(client, monkeypatch):
    customer, bills = customer_with_bills(unpaid=1)
    body = encode(notice(customer, bills, "VCB-STALE"))
    headers = signed_headers(body, PAYMENTS)
    assert post(client, PAYMENTS, body, headers).status_code == 201
    later = int(headers["X-Timestamp"]) + 301
    monkeypatch.setattr(auth.time, "time", lambda: float(later))
    replay = post(client, PAYMENTS, body, headers)
    assert replay.status_code == 401
    assert Payment.objects.count() == 1


def test_the_same_transaction_id_with_another_body_is_refused(client):
    customer, bills = customer_with_bills(unpaid=2)
    assert signed_post(client, PAYMENTS, notice(customer, bills[:1], "VCB-0004")).status_code == 201
    reused = signed_post(client, PAYMENTS, notice(customer, bills[1:], "VCB-0004"))
    assert reused.status_code == 409 and _error_code(reused) == "transaction_id_reused"
    bills[1].refresh_from_db()
    assert not bills[1].is_paid
    assert Payment.objects.count() == 1


def test_transaction_ids_are_per_partner(client):
    customer, bills = customer_with_bills(unpaid=2)
    vcb = signed_post(client, PAYMENTS, notice(customer, bills[:1], "SHARED-1"))
    momo = signed_post(client, PAYMENTS, notice(customer, bills[1:], "SHARED-1"), partner="MOMO")
    assert vcb.status_code == momo.status_code == 201


def test_a_notice_for_a_paid_bill_is_refused_and_the_refusal_is_final(client):
    customer, bills = customer_with_bills(unpaid=1)
    assert signed_post(client, PAYMENTS, notice(customer, bills, "VCB-0005")).status_code == 201
    body = notice(customer, bills, "MOMO-0001")
    refused = signed_post(client, PAYMENTS, body, partner="MOMO")
    assert refused.status_code == 409 and _error_code(refused) == "bill_already_paid"
    assert refused.json()["error"]["fields"] == {"bill_numbers": [bills[0].number]}
    again = signed_post(client, PAYMENTS, body, partner="MOMO", timestamp=int(time.time()) - 1)
    assert again.status_code == 409 and again.json() == refused.json()
    assert not Payment.objects.filter(provider_txn_id="MOMO-0001").exists()


def test_the_amount_must_be_the_exact_sum_of_the_bills(client):
    customer, bills = customer_with_bills(unpaid=2, amounts=[200_000, 100_000])
    for amount in (299_999, 300_001, 200_000):
        response = signed_post(
            client, PAYMENTS, notice(customer, bills, f"VCB-AMT-{amount}", amount=amount)
        )
        assert response.status_code == 422 and _error_code(response) == "amount_mismatch"
        assert "amount" in response.json()["error"]["fields"]
    assert Payment.objects.count() == 0
    assert Bill.objects.filter(status=Bill.Status.PAID).count() == 0


def test_unknown_customers_and_bills_are_404(client):
    customer, bills = customer_with_bills(unpaid=1)
    stranger_bill = BillFactory()
    unknown = signed_post(
        client, PAYMENTS, notice(customer, bills, "VCB-404A", customer_code="PA14HT9999999")
    )
    assert unknown.status_code == 404 and _error_code(unknown) == "customer_not_found"
    foreign = signed_post(client, PAYMENTS, notice(customer, [stranger_bill], "VCB-404B"))
    assert foreign.status_code == 404 and _error_code(foreign) == "bill_not_found"
    assert foreign.json()["error"]["fields"] == {"bill_numbers": [stranger_bill.number]}


@pytest.mark.parametrize(
    "changes",
    [
        {"transaction_id": ""},
        {"transaction_id": "has space"},
        {"transaction_id": "x" * 65},
        {"transaction_id": "a,b"},
        {"bill_numbers": []},
        {"bill_numbers": "HD1"},
        {"amount": "452160"},
        {"amount": 452160.0},
        {"amount": True},
        {"amount": 0},
        {"amount": -5},
        {"paid_at": "yesterday"},
        {"paid_at": (timezone.now() + timedelta(hours=1)).isoformat()},
        {"customer_code": None},
    ],
)
def test_a_malformed_notice_is_400_and_claims_nothing(client, changes):
    customer, bills = customer_with_bills(unpaid=1)
    body = {**notice(customer, bills, "VCB-BAD"), **changes}
    response = signed_post(client, PAYMENTS, body)
    assert response.status_code == 400, response.content
    assert _error_code(response) in {"invalid_request", "invalid_customer_code"}
    assert Payment.objects.count() == 0
    # A malformed notice does not claim its transaction id: the corrected one goes through.
    fixed = signed_post(client, PAYMENTS, notice(customer, bills, "VCB-BAD"))
    assert fixed.status_code == 201


def test_a_bill_listed_twice_is_refused(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = notice(customer, bills + bills, "VCB-DUP", amount=bills[0].amount)
    response = signed_post(client, PAYMENTS, body)
    assert response.status_code == 400 and "bill_numbers" in response.json()["error"]["fields"]


def test_a_correctly_signed_notice_with_unknown_fields_is_400_naming_them(client):
    customer, bills = customer_with_bills(unpaid=1)
    body = {**notice(customer, bills, "VCB-EXTRA"), "reason": "x", "paidAt": "2026-11-27"}
    response = signed_post(client, PAYMENTS, body)
    assert response.status_code == 400, response.content
    assert _error_code(response) == "invalid_request"
    error = response.json()["error"]
    assert set(error["fields"]) == {"reason", "paidAt"}
    assert "reason" in error["message"] and "paidAt" in error["message"]
    assert not Payment.objects.exists()
    # Like any malformed notice, it does not use up its transaction id.
    assert signed_post(client, PAYMENTS, notice(customer, bills, "VCB-EXTRA")).status_code == 201


def test_unknown_fields_are_refused_by_every_operation_with_the_other_errors(client):
    customer, bills = customer_with_bills(unpaid=1)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-EXTRA-2"))
    inquiry = signed_post(client, INQUIRY, {"customer_code": customer.code, "amount": 1})
    assert inquiry.status_code == 400 and set(inquiry.json()["error"]["fields"]) == {"amount"}
    reversal = signed_post(
        client, REVERSALS, {"transaction_id": "VCB-EXTRA-2", "reason": "x", "bill_numbers": []}
    )
    assert reversal.status_code == 400
    assert set(reversal.json()["error"]["fields"]) == {"bill_numbers"}
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    # An unknown field does not hide what else is wrong with the body.
    both = signed_post(client, REVERSALS, {"transaction_id": "VCB-EXTRA-2", "note": "x"})
    assert set(both.json()["error"]["fields"]) == {"reason", "note"}


def _business_midnight_yesterday() -> datetime:
    today = timezone.now().astimezone(GMT7)
    return today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def test_paid_at_may_go_back_to_the_start_of_the_previous_business_day(client):
    customer, bills = customer_with_bills(unpaid=1)
    earliest = _business_midnight_yesterday()
    response = signed_post(
        client, PAYMENTS, notice(customer, bills, "VCB-EDGE", paid_at=earliest.isoformat())
    )
    assert response.status_code == 201, response.content
    assert Payment.objects.get().succeeded_at == earliest


@pytest.mark.parametrize(
    "paid_at",
    [
        lambda: _business_midnight_yesterday() - timedelta(seconds=1),
        lambda: datetime(2019, 1, 1, 8, 0, tzinfo=GMT7),
    ],
    ids=["a second before yesterday", "2019"],
)
def test_an_older_paid_at_is_refused(client, paid_at):
    customer, bills = customer_with_bills(unpaid=1)
    body = notice(customer, bills, "VCB-BACKDATED", paid_at=paid_at().isoformat())
    response = signed_post(client, PAYMENTS, body)
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["paid_at"]
    assert _business_midnight_yesterday().isoformat() in fields["paid_at"][0]
    assert not Payment.objects.exists()
    bills[0].refresh_from_db()
    assert not bills[0].is_paid


def test_a_notice_retried_days_later_gets_its_first_answer(client, monkeypatch):
    """A bank retries a notice it already sent, re-signed (the timestamp must be fresh) days
    after: its `paid_at` is now too old for a new notice, but this one was answered already."""
    customer, bills = customer_with_bills(unpaid=1)
    body = notice(customer, bills, "VCB-RETRIED")
    first = signed_post(client, PAYMENTS, body)
    assert first.status_code == 201
    later = timezone.now() + timedelta(days=4)
    monkeypatch.setattr(timezone, "now", lambda: later)  # the signature's clock stays ours
    retried = signed_post(client, PAYMENTS, body)
    assert retried.status_code == 200, retried.content
    assert retried.json()["payment_id"] == first.json()["payment_id"]
    another = signed_post(client, PAYMENTS, {**body, "transaction_id": "VCB-NEW"})
    assert another.status_code == 400 and "paid_at" in another.json()["error"]["fields"]
    assert Payment.objects.count() == 1


# The limit is 300 s ahead of our clock; a few seconds either side, as the request takes time.
@pytest.mark.parametrize(("ahead", "status"), [(290, 201), (310, 400)])
def test_paid_at_may_be_ahead_by_the_clock_tolerance_and_no_more(client, ahead, status):
    customer, bills = customer_with_bills(unpaid=1)
    paid_at = (timezone.now() + timedelta(seconds=ahead)).isoformat()
    response = signed_post(client, PAYMENTS, notice(customer, bills, "VCB-AHEAD", paid_at=paid_at))
    assert response.status_code == status, response.content
    if status == 400:
        assert list(response.json()["error"]["fields"]) == ["paid_at"]


def test_a_bank_app_payment_turns_a_later_vietqr_transfer_into_a_refund(client):
    customer, bills = customer_with_bills(unpaid=1)
    pending = services.payment_start(customer_code=customer.code, method="vietqr").payment
    accepted = signed_post(client, PAYMENTS, notice(customer, bills, "VCB-RACE"))
    assert accepted.status_code == 201
    outcome = services.payment_mark_succeeded(
        payment_id=pending.id,
        report=services.Report(source=services.Source.TRANSFER),
        amount=pending.amount,
    )
    assert outcome == services.Outcome.NEEDS_REFUND
    pending.refresh_from_db()
    assert pending.needs_refund and pending.refund_amount == pending.amount
    bills[0].refresh_from_db()
    assert str(bills[0].paid_by_id) == accepted.json()["payment_id"]


# --- Reversal -----------------------------------------------------------------------------------
def test_a_reversal_on_the_same_business_day_makes_the_bills_unpaid(client):
    customer, bills = customer_with_bills(unpaid=2)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-REV1"))
    response = signed_post(
        client, REVERSALS, {"transaction_id": "VCB-REV1", "reason": "customer cancelled"}
    )
    assert response.status_code == 200 and response.json() == {"status": "reversed"}
    payment = Payment.objects.get(provider_txn_id="VCB-REV1")
    assert payment.status == Payment.Status.REVERSED
    for bill in bills:
        bill.refresh_from_db()
        assert not bill.is_paid and bill.paid_by_id is None
    event = payment.events.get(to_status=Payment.Status.REVERSED)
    assert event.detail["reason"] == "customer cancelled"
    assert event.source == PaymentEvent.Source.COLLECTION
    assert event.message.kind == InboundMessage.Kind.REVERSAL
    # The bills can be paid again, by anyone.
    again = signed_post(client, PAYMENTS, notice(customer, bills, "MOMO-AFTER"), partner="MOMO")
    assert again.status_code == 201


def test_the_business_day_is_gmt7_not_utc(client):
    customer, bills = customer_with_bills(unpaid=1)
    now_local = timezone.now().astimezone(GMT7)
    # Just after midnight in Hà Tĩnh is still "yesterday" in UTC.
    just_after_midnight = now_local.replace(hour=0, minute=0, second=1, microsecond=0)
    signed_post(
        client,
        PAYMENTS,
        notice(customer, bills, "VCB-MIDNIGHT", paid_at=just_after_midnight.isoformat()),
    )
    response = signed_post(client, REVERSALS, {"transaction_id": "VCB-MIDNIGHT", "reason": "x"})
    assert response.status_code == 200, response.content


def test_a_reversal_after_the_business_day_is_refused(client):
    customer, bills = customer_with_bills(unpaid=1)
    yesterday = timezone.now().astimezone(GMT7).replace(
        hour=23, minute=59, second=59, microsecond=0
    ) - timedelta(days=1)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-OLD", paid_at=yesterday.isoformat()))
    response = signed_post(client, REVERSALS, {"transaction_id": "VCB-OLD", "reason": "late"})
    assert response.status_code == 409 and _error_code(response) == "reversal_window_closed"
    assert Payment.objects.get(provider_txn_id="VCB-OLD").status == Payment.Status.SUCCEEDED
    bills[0].refresh_from_db()
    assert bills[0].is_paid


def test_a_repeated_reversal_is_idempotent(client):
    customer, bills = customer_with_bills(unpaid=1)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-REV2"))
    body = encode({"transaction_id": "VCB-REV2", "reason": "duplicate debit"})
    headers = signed_headers(body, REVERSALS)
    first = post(client, REVERSALS, body, headers)
    replay = post(client, REVERSALS, body, headers)
    retry = signed_post(client, REVERSALS, json.loads(body), timestamp=int(time.time()) - 2)
    assert [r.status_code for r in (first, replay, retry)] == [200, 200, 200]
    assert replay["Idempotent-Replayed"] == "true"
    payment = Payment.objects.get(provider_txn_id="VCB-REV2")
    assert payment.events.filter(to_status=Payment.Status.REVERSED).count() == 1


def test_a_reversed_payment_stays_reversed_after_the_window(client):
    customer, bills = customer_with_bills(unpaid=1)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-REV3"))
    signed_post(client, REVERSALS, {"transaction_id": "VCB-REV3", "reason": "x"})
    # Move the payment to yesterday: asking again still answers "reversed", never 409.
    Payment.objects.filter(provider_txn_id="VCB-REV3").update(
        succeeded_at=timezone.now() - timedelta(days=2)
    )
    again = signed_post(client, REVERSALS, {"transaction_id": "VCB-REV3", "reason": "again"})
    assert again.status_code == 200 and again.json() == {"status": "reversed"}


def test_only_the_partners_own_transactions_can_be_reversed(client):
    customer, bills = customer_with_bills(unpaid=1)
    signed_post(client, PAYMENTS, notice(customer, bills, "VCB-REV4"))
    other = signed_post(
        client, REVERSALS, {"transaction_id": "VCB-REV4", "reason": "x"}, partner="MOMO"
    )
    assert other.status_code == 404 and _error_code(other) == "transaction_not_found"
    unknown = signed_post(client, REVERSALS, {"transaction_id": "NEVER-SEEN", "reason": "x"})
    assert unknown.status_code == 404
    assert Payment.objects.get(provider_txn_id="VCB-REV4").status == Payment.Status.SUCCEEDED


def test_a_reversal_needs_a_reason(client):
    response = signed_post(client, REVERSALS, {"transaction_id": "VCB-1", "reason": "  "})
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]


def test_answers_follow_the_language_switch(client):
    vi = signed_post(client, INQUIRY, {"customer_code": "PA14HT9999999"})
    # Another second, so not a replay of the first (which would get the first answer again).
    en = signed_post(
        client,
        INQUIRY + "?lang=en",
        {"customer_code": "PA14HT9999999"},
        timestamp=int(time.time()) - 1,
    )
    assert en.json()["error"]["message"] == "No customer has this code."
    assert vi.json()["error"]["message"] != en.json()["error"]["message"]
    assert vi.json()["error"]["code"] == en.json()["error"]["code"] == "customer_not_found"


def test_a_payment_of_yesterday_is_found_by_its_gmt7_day():
    # 2026-11-26 17:30 UTC is 2026-11-27 00:30 in Hà Tĩnh.
    from datetime import UTC

    from payments.channels.collection.business_day import (
        business_date,
        business_day_bounds,
        previous_business_day_start,
    )

    moment = datetime(2026, 11, 26, 17, 30, tzinfo=UTC)
    assert business_date(moment).isoformat() == "2026-11-27"
    start, end = business_day_bounds(business_date(moment))
    assert start <= moment < end
    assert start == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert previous_business_day_start(moment) == datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
