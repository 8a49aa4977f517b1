"""Refused messages cost an attacker nothing, so the inbox keeps little of them: each cut short,
so many per client address (the rest answered alike, not kept), purged after a while. Accepted
messages are kept whatever happens."""

from __future__ import annotations

import datetime
import logging

import pytest
from django.test import Client
from django.utils import timezone

from payments import inbox, tasks
from payments.models import InboundMessage, PaymentEvent
from tests.payments.channels.collection.test_collection_support import (
    INQUIRY,
    encode,
    partner_secrets,  # noqa: F401 - fixture
    post,
)
from tests.sandbox.support import bank_message, ipn_url, redirect_payment

pytestmark = pytest.mark.django_db
Outcome = InboundMessage.Outcome


def _forged(payment, n: int = 0, padding: str = "") -> dict[str, str]:
    return {**bank_message(payment), "vnp_Amount": str(100 + n), "vnp_OrderInfo": padding or "x"}


def test_a_forged_ipn_over_the_cap_is_kept_cut_to_the_cap(client, settings):
    settings.INBOX_REFUSED_BODY_LIMIT = 2000
    payment = redirect_payment()
    response = client.get(ipn_url(_forged(payment, padding="A" * 50_000)))
    assert response.json() == {"RspCode": "97", "Message": "Invalid signature"}
    message = InboundMessage.objects.get()
    assert message.outcome == Outcome.INVALID_SIGNATURE
    assert len(message.body) == 2000 and message.body.startswith("vnp_")


@pytest.mark.usefixtures("partner_secrets")
def test_a_refused_collection_call_is_kept_cut_to_the_cap(settings):
    settings.INBOX_REFUSED_BODY_LIMIT = 2000
    body = encode({"customer_code": "PA14HT0000001", "note": "B" * 9000})
    headers = {"X-Partner-Code": "VCB", "X-Timestamp": "1", "X-Signature": "f" * 64}
    response = post(Client(), INQUIRY, body, headers)
    assert response.status_code == 401
    message = InboundMessage.objects.get(outcome=Outcome.UNAUTHORIZED)
    assert len(message.body) == 2000 and message.response_body == response.json()


def test_past_the_limit_forged_ipns_are_answered_alike_but_not_kept(client, settings, caplog):
    settings.INBOX_REFUSED_RATE_LIMIT = "3/d"
    payment = redirect_payment()
    with caplog.at_level(logging.WARNING, logger="payments.inbox"):
        answers = [client.get(ipn_url(_forged(payment, n))).json() for n in range(6)]
    assert answers == [{"RspCode": "97", "Message": "Invalid signature"}] * 6
    assert InboundMessage.objects.filter(signature_valid=False).count() == 3
    # The flood is in the log once, with the address, not once per request.
    floods = [r for r in caplog.records if "no more are kept" in r.getMessage()]
    assert len(floods) == 1 and "127.0.0.1" in floods[0].getMessage()
    # Another address has its own budget; a genuine message is never held back.
    other = client.get(ipn_url(_forged(payment, 99)), REMOTE_ADDR="203.0.113.9")
    assert other.json()["RspCode"] == "97"
    assert InboundMessage.objects.filter(signature_valid=False).count() == 4
    assert client.get(ipn_url(bank_message(payment))).json()["RspCode"] == "00"
    assert InboundMessage.objects.filter(signature_valid=True, payment=payment).count() == 1


@pytest.mark.usefixtures("partner_secrets")
def test_past_the_limit_unsigned_collection_calls_are_answered_alike_but_not_kept(settings):
    settings.INBOX_REFUSED_RATE_LIMIT = "3/d"
    client = Client()
    body = encode({"customer_code": "PA14HT0000001"})
    responses = [post(client, INQUIRY, body, {}) for _ in range(5)]
    assert {r.status_code for r in responses} == {401}
    assert len({r.content for r in responses}) == 1
    assert {r["WWW-Authenticate"] for r in responses} == {responses[0]["WWW-Authenticate"]}
    assert InboundMessage.objects.filter(outcome=Outcome.UNAUTHORIZED).count() == 3


def test_the_purge_forgets_old_refusals_and_keeps_accepted_and_recent_ones(settings):
    settings.INBOX_REFUSED_RETENTION_DAYS = 30
    payment = redirect_payment()

    def refused(key: str, outcome: Outcome = Outcome.INVALID_SIGNATURE) -> int:
        message_id = inbox.inbox_refuse(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=key,
            body="forged",
            address="198.51.100.7",
            refusal=inbox.Applied(outcome),
        )
        assert message_id is not None
        return message_id

    old_refused = [
        refused("bad:1"),
        refused("bad:2", Outcome.ADDRESS_NOT_ALLOWED),
        refused("bad:3", Outcome.UNAUTHORIZED),
    ]
    recent_refused = refused("bad:recent")
    cited = refused("bad:cited")  # nothing should cite a refusal; if something does, it stays
    PaymentEvent.objects.create(payment=payment, source=PaymentEvent.Source.IPN, message_id=cited)
    old_accepted = inbox.inbox_receive(
        kind=InboundMessage.Kind.IPN,
        dedupe_key="good:old",
        body="genuine",
        signature_valid=True,
        processed=inbox.Applied(Outcome.SUCCEEDED_APPLIED),
    )
    old_unmatched = inbox.inbox_receive(
        kind=InboundMessage.Kind.IPN,
        dedupe_key="good:unmatched",
        body="genuine",
        signature_valid=True,
        processed=inbox.Applied(Outcome.ORDER_NOT_FOUND),
    )
    long_ago = timezone.now() - datetime.timedelta(days=31)
    InboundMessage.objects.exclude(pk=recent_refused).update(received_at=long_ago)
    InboundMessage.objects.filter(pk=recent_refused).update(
        received_at=timezone.now() - datetime.timedelta(days=29)
    )

    assert tasks.purge_refused_messages() == 3
    left = set(InboundMessage.objects.values_list("pk", flat=True))
    assert left == {recent_refused, cited, old_accepted, old_unmatched}
    assert not left & set(old_refused)
    assert tasks.purge_refused_messages() == 0


def test_the_purge_runs_in_batches_until_none_is_left(settings):
    for n in range(7):
        inbox.inbox_refuse(
            kind=InboundMessage.Kind.INQUIRY,
            dedupe_key=f"collection:rejected:{n}",
            body="{}",
            address=f"198.51.100.{n}",
            refusal=inbox.Applied(Outcome.UNAUTHORIZED),
        )
    cutoff = timezone.now() + datetime.timedelta(seconds=1)
    assert inbox.inbox_purge_refused(older_than=cutoff, batch_size=3) == 7
    assert not InboundMessage.objects.exists()


def test_the_purge_is_on_the_beat_schedule(settings):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "payments.tasks.purge_refused_messages" in scheduled
