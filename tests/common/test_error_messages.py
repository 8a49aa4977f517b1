"""One table from an error code to its message: the public API, the collection API and the
household's pages say the same sentence of the same refusal, in the request's language."""

from __future__ import annotations

import html
import json

import pytest
from django.utils import translation
from rest_framework.test import APIClient

from common.error_messages import ERROR_MESSAGES, error_message
from tests.factories import customer_with_bills
from tests.payments.channels.collection.test_collection_support import (
    INQUIRY,
    partner_secrets,  # noqa: F401 - a fixture
    signed_post,
)

pytestmark = pytest.mark.django_db

UNKNOWN = "PA14HT9999999"


def _start_over_api(body: dict) -> dict:
    response = APIClient().post(
        "/api/v1/payments/", data=json.dumps(body), content_type="application/json"
    )
    return response.json()["error"]


@pytest.mark.usefixtures("partner_secrets")
def test_an_unknown_customer_reads_the_same_through_both_apis(client):
    public = _start_over_api({"customer_code": UNKNOWN, "method": "vietqr"})
    collection = signed_post(client, INQUIRY, {"customer_code": UNKNOWN}).json()["error"]
    with translation.override("vi"):
        expected = error_message("customer_not_found")
    assert public["code"] == collection["code"] == "customer_not_found"
    assert public["message"] == collection["message"] == expected


def test_nothing_to_pay_reads_the_same_on_the_api_and_the_bills_page(client):
    customer, _bills = customer_with_bills(unpaid=0)
    public = _start_over_api({"customer_code": customer.code, "method": "vietqr"})
    page = client.post(
        "/pay/start/", {"customer_code": customer.code, "method": "vietqr"}, follow=True
    )
    with translation.override("vi"):
        expected = error_message("nothing_to_pay")
    assert public == {"code": "nothing_to_pay", "message": expected, "fields": {}}
    assert html.escape(expected) in page.content.decode()


@pytest.mark.parametrize("code", sorted(ERROR_MESSAGES))
def test_every_message_is_in_vietnamese_first(code):
    with translation.override("en"):
        english = error_message(code, expected=1, received=2)
    with translation.override("vi"):
        vietnamese = error_message(code, expected=1, received=2)
    assert vietnamese and vietnamese != english


def test_a_code_without_a_message_keeps_the_services_own():
    assert error_message("a_new_refusal", "Not now.") == "Not now."


def test_amounts_read_grouped_and_missing_values_never_show_placeholders():
    with translation.override("vi"):
        said = error_message("amount_mismatch", expected=452_160, received=400_000)
    assert "452.160" in said and "400.000" in said
    assert error_message("amount_mismatch", "The amounts differ.") == "The amounts differ."
    assert error_message("customer_not_found", "", expected=1) == str(
        ERROR_MESSAGES["customer_not_found"]
    )
