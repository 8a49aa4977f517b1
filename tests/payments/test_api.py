"""POST /api/v1/payments/ and GET /api/v1/payments/{id}/ as docs/interfaces.md describes them."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import Bill
from payments import services
from payments.channels.vietqr import payload as vietqr
from payments.models import IdempotencyKey, Payment
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db
URL = "/api/v1/payments/"


@pytest.fixture
def api():
    return APIClient()


def _post(api, body, **headers):
    return api.post(URL, data=json.dumps(body), content_type="application/json", headers=headers)


def test_it_starts_a_vietqr_payment_with_the_contract_shape(api, settings):
    customer, bills = customer_with_bills(unpaid=2, amounts=[200_000, 100_000])
    response = _post(api, {"customer_code": customer.code.lower(), "method": "vietqr"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id", "reference", "status", "amount", "currency", "method", "partner", "bills",
        "created_at", "expires_at", "succeeded_at", "redirect_url", "app_url", "qr",
    }  # fmt: skip
    assert body["status"] == "pending" and body["amount"] == 300_000
    assert body["currency"] == "VND" and body["redirect_url"] is None
    assert sorted(body["bills"]) == sorted(b.number for b in bills)
    qr = body["qr"]
    assert qr["content"] == body["reference"]
    assert qr["bank_bin"] == settings.VIETQR_BIN and qr["account"] == settings.VIETQR_ACCOUNT
    parsed = vietqr.parse_payload(qr["payload"])
    assert parsed.amount == 300_000 and parsed.purpose == body["reference"]
    assert qr["png_url"].endswith(f"/api/v1/payments/{body['id']}/qr.png")
    png = api.get(qr["png_url"])
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = api.get(qr["svg_url"])
    assert svg.status_code == 200 and b"<svg" in svg.content


def test_it_starts_a_redirect_payment_with_a_signed_url(api):
    customer, _ = customer_with_bills(unpaid=1)
    response = _post(
        api, {"customer_code": customer.code, "method": "redirect", "partner": "SANDBOX"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["partner"] == "SANDBOX" and body["qr"] is None
    assert "vnp_SecureHash=" in body["redirect_url"]
    assert f"vnp_TxnRef={body['reference']}" in body["redirect_url"]


def test_it_reads_a_payment_and_its_status(api):
    customer, _ = customer_with_bills(unpaid=1)
    created = _post(api, {"customer_code": customer.code, "method": "vietqr"}).json()
    services.payment_mark_succeeded(
        payment_id=created["id"], report=services.Report(source=services.Source.IPN)
    )
    body = api.get(f"{URL}{created['id']}/").json()
    assert body["status"] == "succeeded" and body["succeeded_at"]
    missing = api.get(f"{URL}{uuid.uuid4()}/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "payment_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"customer_code": "PA14HT9999999", "method": "vietqr"}, 404, "customer_not_found"),
        ({"customer_code": "12", "method": "vietqr"}, 400, "invalid_customer_code"),
        ({"customer_code": "PA14HT0000001", "method": "cash"}, 400, "invalid_request"),
        ({"method": "vietqr"}, 400, "invalid_request"),
        ({"customer_code": "PA14HT0000001", "method": "redirect"}, 400, "invalid_partner"),
        (
            {"customer_code": "PA14HT0000001", "method": "redirect", "partner": "NOPE"},
            400,
            "invalid_partner",
        ),
        ({"customer_code": ["x"], "method": "vietqr", "bill_numbers": "x"}, 400, "invalid_request"),
        (["not", "an", "object"], 400, "invalid_request"),
    ],
)
def test_bad_input_gets_the_contract_error_and_changes_nothing(api, body, status, code):
    customer_with_bills(unpaid=1, code="PA14HT0000001")
    response = _post(api, body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert Payment.objects.count() == 0


def test_malformed_json_is_a_400_not_a_500(api):
    response = api.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_paid_bills_and_nothing_to_pay_are_409(api):
    customer, bills = customer_with_bills(unpaid=1)
    first = _post(api, {"customer_code": customer.code, "method": "vietqr"}).json()
    services.payment_mark_succeeded(
        payment_id=first["id"], report=services.Report(source=services.Source.IPN)
    )
    paid = _post(
        api, {"customer_code": customer.code, "method": "vietqr", "bill_numbers": [bills[0].number]}
    )
    assert paid.status_code == 409 and paid.json()["error"]["code"] == "bill_already_paid"
    nothing = _post(api, {"customer_code": customer.code, "method": "vietqr"})
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_pay"


def test_the_same_idempotency_key_and_body_returns_the_first_answer(api):
    customer, _ = customer_with_bills(unpaid=1)
    body = {"customer_code": customer.code, "method": "vietqr"}
    first = _post(api, body, **{"Idempotency-Key": "k-1"})
    second = _post(api, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Payment.objects.count() == 1
    other = _post(
        api, {**body, "method": "redirect", "partner": "SANDBOX"}, **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_with_the_same_key_at_the_same_moment_create_one_payment():
    customer, _ = customer_with_bills(unpaid=1)
    body = {"customer_code": customer.code, "method": "vietqr"}
    barrier = threading.Barrier(8)
    answers = []

    def call():
        try:
            barrier.wait()
            answers.append(_post(APIClient(), body, **{"Idempotency-Key": "same-moment"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 1
    assert Payment.objects.count() == 1 and IdempotencyKey.objects.count() == 1
    assert Bill.objects.filter(status="unpaid").count() == 1


# --- Rate limit and reuse of an open payment ---------------------------------------------------
def test_starting_payments_shares_the_lookup_budget_and_answers_429_past_it(api, settings):
    settings.LOOKUP_RATE_LIMIT = "3/m"
    customer, _ = customer_with_bills(unpaid=1)
    assert api.get(f"/api/v1/customers/{customer.code}/bills/").status_code == 200
    assert _post(api, {"customer_code": customer.code, "method": "vietqr"}).status_code == 201
    assert _post(api, {"customer_code": "PA14HT9999999", "method": "vietqr"}).status_code == 404
    # The budget is spent: no more telling known codes from unknown ones, and no new payments.
    for code in (customer.code, "PA14HT9999998"):
        refused = _post(api, {"customer_code": code, "method": "vietqr"})
        assert refused.status_code == 429, refused.content
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused["Retry-After"]) <= 61
    lookup = api.get(f"/api/v1/customers/{customer.code}/bills/")
    assert lookup.status_code == 429
    assert Payment.objects.count() == 1
    # Another client address still has its budget.
    other = api.post(
        URL,
        data=json.dumps({"customer_code": customer.code, "method": "vietqr"}),
        content_type="application/json",
        REMOTE_ADDR="10.0.0.9",
    )
    assert other.status_code == 200


def test_the_same_bills_and_method_return_the_open_payment_not_a_new_one(api):
    customer, bills = customer_with_bills(unpaid=2)
    first = _post(api, {"customer_code": customer.code, "method": "vietqr"})
    assert first.status_code == 201
    again = _post(api, {"customer_code": customer.code, "method": "vietqr"})
    named = _post(
        api,
        {
            "customer_code": customer.code,
            "method": "vietqr",
            "bill_numbers": [b.number for b in reversed(bills)],
        },
    )
    assert again.status_code == named.status_code == 200
    assert again.json() == named.json() == first.json()
    assert Payment.objects.count() == 1


def test_another_method_or_other_bills_make_a_new_payment(api):
    customer, bills = customer_with_bills(unpaid=2)
    vietqr_payment = _post(api, {"customer_code": customer.code, "method": "vietqr"}).json()
    redirect = _post(
        api, {"customer_code": customer.code, "method": "redirect", "partner": "SANDBOX"}
    )
    one_bill = _post(
        api, {"customer_code": customer.code, "method": "vietqr", "bill_numbers": [bills[0].number]}
    )
    assert redirect.status_code == one_bill.status_code == 201
    ids = {vietqr_payment["id"], redirect.json()["id"], one_bill.json()["id"]}
    assert len(ids) == 3
    redirect_again = _post(
        api, {"customer_code": customer.code, "method": "redirect", "partner": "SANDBOX"}
    )
    assert redirect_again.status_code == 200
    assert redirect_again.json()["id"] == redirect.json()["id"]
    assert "vnp_SecureHash=" in redirect_again.json()["redirect_url"]


def test_an_expired_or_settled_payment_is_not_reused(api):
    customer, _ = customer_with_bills(unpaid=1)
    body = {"customer_code": customer.code, "method": "vietqr"}
    first = _post(api, body).json()
    assert _post(api, body).status_code == 200  # while it is open
    Payment.objects.filter(pk=first["id"]).update(expires_at=timezone.now())
    second = _post(api, body)
    assert second.status_code == 201 and second.json()["id"] != first["id"]
    services.payment_cancel(
        payment_id=second.json()["id"], report=services.Report(source=services.Source.API)
    )
    third = _post(api, body)
    assert third.status_code == 201 and third.json()["id"] not in {first["id"], second.json()["id"]}


@pytest.mark.django_db(transaction=True)
def test_two_starts_of_the_same_bills_at_the_same_moment_make_one_payment():
    customer, _ = customer_with_bills(unpaid=2)
    body = {"customer_code": customer.code, "method": "vietqr"}
    barrier = threading.Barrier(6)
    answers = []

    def call():
        try:
            barrier.wait()
            answers.append(_post(APIClient(), body))
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Payment.objects.count() == 1
