"""GET /api/v1/customers/{code}/bills/ as docs/interfaces.md describes it, errors included."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from payments import services
from tests import factories
from tests.portal.demo import household_with_history, months_ago

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def url(code: str) -> str:
    return f"/api/v1/customers/{code}/bills/"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_it_answers_with_the_contract_shape(api):
    household = household_with_history(unpaid=2)
    response = api.get(url(household.customer.code))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"customer", "bills", "total_due"}
    assert body["customer"] == {
        "code": "PA14HT0012345",
        "name": "Trần T** H** N**",
        "address": "***, phường Nam Hà, TP Hà Tĩnh",
        "service_area": {"code": "PA14HT", "name": "Điện lực Thành phố Hà Tĩnh"},
    }
    assert len(body["bills"]) == 12
    newest = body["bills"][0]
    assert set(newest) == {"number", "period", "kwh", "amount", "due_date", "status"}
    latest = household.bills[-1]
    assert newest == {
        "number": latest.number,
        "period": months_ago(1).strftime("%Y-%m"),
        "kwh": latest.kwh,
        "amount": latest.amount,
        "due_date": latest.due_date.isoformat(),
        "status": "unpaid",
    }
    assert [bill["period"] for bill in body["bills"]] == [
        months_ago(age).strftime("%Y-%m") for age in range(1, 13)
    ]
    assert [bill["status"] for bill in body["bills"]] == ["unpaid"] * 2 + ["paid"] * 10
    assert body["total_due"] == sum(bill.amount for bill in household.unpaid)
    assert isinstance(body["total_due"], int)


def test_it_never_reveals_a_phone_an_email_or_the_full_address(api):
    household = household_with_history(phone="0983 111 222", email="hong.nhung@example.vn")
    text = api.get(url(household.customer.code)).content.decode()
    for secret in ("0983 111 222", "0983111222", "hong.nhung", "example.vn", "Hà Huy Tập", "Số 45"):
        assert secret not in text


def test_it_totals_nothing_when_everything_is_paid(api):
    household = household_with_history(unpaid=0)
    body = api.get(url(household.customer.code)).json()
    assert body["total_due"] == 0
    assert {bill["status"] for bill in body["bills"]} == {"paid"}


def test_a_customer_without_bills_gets_an_empty_list(api):
    customer = factories.CustomerFactory()
    body = api.get(url(customer.code)).json()
    assert body["bills"] == [] and body["total_due"] == 0


@pytest.mark.parametrize("typed", ["pa14ht0012345", "PA14%20HT00%2012345", "pa14-ht00-12345"])
def test_it_normalises_the_code_in_the_path(api, typed):
    household_with_history()
    response = api.get(url(typed))
    assert response.status_code == 200
    assert response.json()["customer"]["code"] == "PA14HT0012345"


@pytest.mark.parametrize(
    "typed",
    ["PA14HT001234", "12345", "PA14HT0012345XYZ", "%3Cscript%3E", "P" * 300, "PA14HT00Ư2345"],
)
def test_a_malformed_code_is_a_400_before_any_query(api, typed, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api.get(url(typed))
    error = assert_error(response, 400, "invalid_customer_code")
    assert set(error["fields"]) == {"code"}


def test_an_unknown_code_is_a_404(api):
    error = assert_error(api.get(url("PA14HT9999999")), 404, "customer_not_found")
    assert error["fields"] == {}


def test_an_inactive_customer_is_not_found(api):
    customer = factories.CustomerFactory(is_active=False)
    assert_error(api.get(url(customer.code)), 404, "customer_not_found")


def test_it_takes_one_query_per_lookup_and_none_from_the_cache(api, django_assert_num_queries):
    household = household_with_history()
    with django_assert_num_queries(1):
        assert api.get(url(household.customer.code)).status_code == 200
    with django_assert_num_queries(0):
        assert api.get(url(household.customer.code)).status_code == 200


def test_a_customer_without_bills_is_found_with_none(api):
    customer = factories.CustomerFactory()
    body = api.get(url(customer.code)).json()
    assert body["customer"]["code"] == customer.code
    assert (body["bills"], body["total_due"]) == ([], 0)


def test_a_paid_bill_shows_as_paid_at_once(api, django_capture_on_commit_callbacks):
    household = household_with_history(unpaid=1)
    assert api.get(url(household.customer.code)).json()["total_due"] > 0
    with django_capture_on_commit_callbacks(execute=True):
        services.payment_record_cash(
            customer_code=household.customer.code,
            bill_numbers=[household.unpaid[0].number],
            actor=factories.staff_user("agent"),
        )
    body = api.get(url(household.customer.code)).json()
    assert body["total_due"] == 0 and body["bills"][0]["status"] == "paid"


def test_it_is_rate_limited_per_client_address(api, settings):
    settings.LOOKUP_RATE_LIMIT = "3/m"
    household = household_with_history()
    for _ in range(3):
        assert api.get(url(household.customer.code)).status_code == 200
    response = api.get(url(household.customer.code))
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 61
    # Another address still has its budget.
    other = api.get(url(household.customer.code), REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 200


def test_malformed_and_unknown_codes_count_against_the_limit_too(api, settings):
    settings.LOOKUP_RATE_LIMIT = "2/m"
    api.get(url("PA14HT9999999"))
    api.get(url("nonsense"))
    assert_error(api.get(url("PA14HT9999998")), 429, "rate_limited")


def test_the_api_and_the_bills_page_share_one_budget(api, client, settings):
    settings.LOOKUP_RATE_LIMIT = "2/m"
    household = household_with_history()
    assert client.get(f"/bills/{household.customer.code}/").status_code == 200
    assert api.get(url(household.customer.code)).status_code == 200
    assert_error(api.get(url(household.customer.code)), 429, "rate_limited")
    assert client.get(f"/bills/{household.customer.code}/").status_code == 429


def test_other_methods_are_refused_in_the_contract_shape(api):
    household = household_with_history()
    response = api.post(
        url(household.customer.code), data=json.dumps({}), content_type="application/json"
    )
    assert_error(response, 405, "method_not_allowed")
    assert_error(api.delete(url(household.customer.code)), 405, "method_not_allowed")


def test_a_path_that_does_not_exist_answers_in_the_contract_shape(api):
    assert_error(api.get("/api/v1/customers/PA14HT0012345/"), 404, "not_found")
    assert_error(api.get("/api/v1/customers/PA14HT0012345/bills/extra/"), 404, "not_found")


def test_it_asks_no_shared_cache_to_keep_the_answer(api):
    household = household_with_history()
    response = api.get(url(household.customer.code))
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.django_db
def test_the_body_built_for_speed_is_the_documented_serializer_shape():
    from customers import selectors
    from customers.api.serializers import CustomerBillsOutput
    from tests.factories import customer_with_bills

    customer, _ = customer_with_bills(unpaid=2)
    data = selectors.customer_bills_data(code=customer.code)
    lookup = selectors.customer_bills_lookup(code=customer.code)
    assert selectors.lookup_api_body(data) == CustomerBillsOutput(lookup).data
