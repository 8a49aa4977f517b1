"""POST /callbacks/transfers/: who may post, what is refused, and what is stored."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from payments import applier, matching, services
from payments.channels.transfers.notifications import credit_from_notification
from payments.models import BankTransfer, InboundMessage, Payment
from tests.factories import customer_with_bills

KEY = "test-transfer-key"
URL = "/callbacks/transfers/"
_ids = itertools.count(70_000)


@pytest.fixture(autouse=True)
def _receiving_account(settings):
    settings.TRANSFER_WEBHOOK_API_KEY = KEY
    settings.VIETQR_BIN = "970436"
    settings.VIETQR_ACCOUNT = "0011004321987"


def notification(**overrides):
    number = next(_ids)
    body = {
        "id": number,
        "gateway": "Vietcombank",
        "transactionDate": "2026-11-27 14:02:37",
        "accountNumber": "0011004321987",
        "code": None,
        "content": "MBVCB.3278907687.EVNABCDEFGH7.CT tu 0912345678",
        "transferType": "in",
        "transferAmount": 452_160,
        "accumulated": 19_077_000,
        "subAccount": None,
        "referenceCode": f"MBVCB.{number}",
    }
    body.update(overrides)
    return body


def post(client, body, authorization=f"Apikey {KEY}", **extra):
    headers = {"Authorization": authorization} if authorization is not None else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", headers=headers, **extra)


@pytest.mark.django_db
def test_it_stores_the_notification_and_answers_success_at_once(client):
    body = notification()
    response = post(client, body, HTTP_USER_AGENT="SePay-Webhook/1.0")
    assert response.status_code == 200 and response.json() == {"success": True}
    message = InboundMessage.objects.get()
    assert message.kind == InboundMessage.Kind.TRANSFER
    assert message.dedupe_key == f"transfer:{body['id']}"
    assert json.loads(message.body) == body
    assert message.partner.code == "VCB" and message.signature_valid is True
    assert message.processed_at is None  # a worker applies it, not the request
    assert message.attempts == 0 and message.outcome == ""
    assert "Authorization" not in message.headers
    assert message.headers["User-Agent"] == "SePay-Webhook/1.0"
    assert BankTransfer.objects.count() == 0


@pytest.mark.django_db
def test_one_id_spelled_three_ways_is_one_notification(client):
    # JSON has one number type: 12, 12.0 and " 12" name the same transfer, stored once.
    for spelling in (12.0, 12, " 12"):
        response = post(client, notification(id=spelling))
        assert response.status_code == 200 and response.json() == {"success": True}
    assert list(InboundMessage.objects.values_list("dedupe_key", flat=True)) == ["transfer:12"]


@pytest.mark.django_db
def test_the_same_id_again_is_answered_the_same_and_applied_once(client):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    body = notification(content=f"CT {payment.reference}", transferAmount=payment.amount)
    first = post(client, body)
    message = InboundMessage.objects.get()
    applier.apply_one(message.pk)
    again = post(client, body)
    applier.apply_one(message.pk)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"success": True}
    assert InboundMessage.objects.count() == 1 and BankTransfer.objects.count() == 1
    assert payment.events.filter(to_status="succeeded").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Bearer {KEY}",
        KEY,
        "Apikey",
        "Apikey wrong-key",
        f"Apikey {KEY}x",
        f"Apikey{KEY}",
    ],
)
def test_a_missing_or_wrong_api_key_is_refused_with_401(client, authorization):
    response = post(client, notification(), authorization=authorization)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Apikey"
    assert InboundMessage.objects.count() == 0


@pytest.mark.django_db
def test_the_scheme_name_is_read_without_regard_to_case(client):
    assert post(client, notification(), authorization=f"APIKEY {KEY}").status_code == 200


@pytest.mark.django_db
def test_with_no_key_configured_nobody_may_post(client, settings):
    settings.TRANSFER_WEBHOOK_API_KEY = ""
    assert post(client, notification(), authorization="Apikey ").status_code == 401
    assert post(client, notification(), authorization="Apikey").status_code == 401


@pytest.mark.django_db
def test_authentication_comes_before_reading_the_body(client):
    response = post(client, "{not json", authorization="Apikey nope")
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw", ["{not json", b"\xff\xfe{}", "", "[1, 2]", "null", '"text"', "42", "[" * 100_000]
)
def test_a_body_that_is_not_a_json_object_is_a_400(client, raw):
    response = post(client, raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"malformed_request", "invalid_request"}
    assert InboundMessage.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", None),
        ("id", "abc"),
        ("id", -3),
        ("id", True),
        ("transferAmount", 12.5),
        ("transferAmount", -5),
        ("transferAmount", 0),
        ("transferAmount", "lots"),
        ("transferType", "sideways"),
        ("transactionDate", "27/11/2026 14:02"),
        ("transactionDate", None),
        ("accountNumber", ""),
        ("accountNumber", "0011-0043"),
        ("content", ["a", "list"]),
        ("content", "x" * 1001),
        ("referenceCode", 12345),
        ("accumulated", "many"),
        ("content", "nul \x00 inside"),  # PostgreSQL text cannot store it: refused, not a 500
        ("id", 10**30),
    ],
)
def test_each_bad_field_is_named_in_the_400(client, field, value):
    response = post(client, notification(**{field: value}))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and field in error["fields"]
    assert InboundMessage.objects.count() == 0


@pytest.mark.django_db
def test_every_bad_field_is_named_at_once(client):
    body = notification(transferAmount="x", transferType="?")
    del body["transactionDate"]
    fields = post(client, body).json()["error"]["fields"]
    assert set(fields) == {"transferAmount", "transferType", "transactionDate"}


@pytest.mark.django_db
def test_optional_fields_may_be_missing_and_whole_float_amounts_are_whole(client):
    body = {
        "id": 5,
        "transactionDate": "2026-11-27 14:02:37",
        "accountNumber": "0011004321987",
        "transferType": "in",
        "transferAmount": 2277000.0,
    }
    assert post(client, body).status_code == 200


@pytest.mark.django_db
def test_other_methods_get_a_json_405(client):
    response = client.get(URL, headers={"Authorization": f"Apikey {KEY}"})
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.dictionaries(
        st.sampled_from(list(notification())),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        max_size=12,
    )
)
@example(body={"id": 1.0})  # found by hypothesis: the id 1.0 is the number 1
@example(body={"id": " 12"})
def test_no_body_gives_a_500(client, body):
    sent = {**notification(), **body}
    response = post(client, sent)
    assert response.status_code in (200, 400), response.content
    # PostgreSQL text holds no NUL character: an id made of them can only be looked up without.
    key = f"transfer:{sent['id']}".replace("\x00", "")
    if response.status_code == 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "fields"}
        assert set(error["fields"]) <= set(body), error  # only what was made wrong is named
        assert not InboundMessage.objects.filter(dedupe_key=key).exists()
    else:
        # Stored under the id as the contract reads it: 12, 12.0 and " 12" are the number 12.
        sender_id, _credit = credit_from_notification(json.loads(json.dumps(sent)))
        assert InboundMessage.objects.filter(dedupe_key=f"transfer:{sender_id}").count() == 1


@pytest.mark.django_db
def test_an_outgoing_transfer_is_accepted_and_recorded_as_ignored(client):
    post(client, notification(transferType="out"))
    message = InboundMessage.objects.get()
    assert applier.apply_one(message.pk) == matching.IGNORED
    assert BankTransfer.objects.get().status == BankTransfer.Status.IGNORED


# --- A broker outage --------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_still_gets_success_and_the_sweeper_sends_it_later(
    client, broker_down, settings, caplog
):
    customer, _ = customer_with_bills(unpaid=1)
    payment = services.payment_start(customer_code=customer.code, method="vietqr").payment
    body = notification(content=payment.reference, transferAmount=payment.amount)
    response = post(client, body)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert "applier not woken" in caplog.text
    message = InboundMessage.objects.get()
    assert message.processed_at is None
    # No applier was woken: the sweeper's drain applies it.
    assert applier.apply_waiting() == 1
    assert InboundMessage.objects.get().outcome == matching.MATCHED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["content", "referenceCode", "gateway"])
def test_a_lone_surrogate_is_refused_not_accepted_and_left_unappliable(client, field):
    # "\ud800" is valid JSON but no text a database can store: it must not get a success.
    raw = json.dumps(notification(**{field: "CT EVN \ud800"}))
    response = post(client, raw)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"][field]
    assert not InboundMessage.objects.exists()
