"""/api/schema/ is valid OpenAPI 3 and documents every operation's errors in the contract shape."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"
LOOKUP = "/api/v1/customers/{code}/bills/"


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node or "allOf" in node:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = schema["components"]["schemas"][name]
        else:
            node = node["allOf"][0]
    return node


def test_the_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_the_schema_is_also_served_as_yaml(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi: 3" in response.content


def test_every_operation_documents_its_errors_in_the_contract_shape(schema):
    found = list(operations(schema))
    assert found, "no operation documented"
    for path, method, operation in found:
        responses = operation["responses"]
        errors = {code for code in responses if code.startswith("4")}
        where = f"{method.upper()} {path}"
        assert errors, f"{where} documents no error response"
        if "{" in path:
            assert "404" in errors, f"{where} takes a path parameter but documents no 404"
        if "requestBody" in operation:
            assert "400" in errors, f"{where} takes a body but documents no 400"
        for code in errors:
            content = responses[code].get("content", {})
            assert content, f"{where} {code} has no body"
            for media in content.values():
                assert media["schema"] == {"$ref": ERROR_REF}, f"{where} {code} is not an Error"


def test_the_error_shape_is_the_contracts(schema):
    error = resolve(schema, {"$ref": ERROR_REF})
    assert error["required"] == ["error"]
    detail = resolve(schema, error["properties"]["error"])
    assert set(detail["properties"]) == {"code", "message", "fields"}


def test_the_lookup_documents_exactly_its_answers(schema):
    operation = schema["paths"][LOOKUP]["get"]
    assert set(operation["responses"]) == {"200", "400", "404", "429"}
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    [parameter] = [p for p in operation["parameters"] if p["in"] == "path"]
    assert parameter["name"] == "code" and parameter["required"] and parameter["description"]
    examples = {
        code: [e["value"] for e in response["content"]["application/json"]["examples"].values()]
        for code, response in operation["responses"].items()
    }
    assert examples["400"][0]["error"]["code"] == "invalid_customer_code"
    assert examples["404"][0]["error"]["code"] == "customer_not_found"
    assert examples["429"][0]["error"]["code"] == "rate_limited"


def test_the_lookup_documents_every_field_of_the_contract(schema):
    ok = schema["paths"][LOOKUP]["get"]["responses"]["200"]["content"]["application/json"]
    body = resolve(schema, ok["schema"])
    assert set(body["properties"]) == {"customer", "bills", "total_due"}
    assert set(body["required"]) == {"customer", "bills", "total_due"}
    customer = resolve(schema, body["properties"]["customer"])
    assert set(customer["properties"]) == {"code", "name", "address", "service_area"}
    area = resolve(schema, customer["properties"]["service_area"])
    assert set(area["properties"]) == {"code", "name"}
    bill = resolve(schema, body["properties"]["bills"]["items"])
    assert set(bill["properties"]) == {"number", "period", "kwh", "amount", "due_date", "status"}
    assert set(bill["required"]) == set(bill["properties"])
    assert resolve(schema, bill["properties"]["status"])["enum"] == ["unpaid", "paid"]
    assert re.fullmatch(bill["properties"]["period"]["pattern"], "2025-03")
    assert bill["properties"]["amount"]["type"] == "integer"
    for fields in (body["properties"], customer["properties"], area["properties"]):
        for name, field in fields.items():
            assert field.get("description"), f"{name} is not described"
    for name, field in bill["properties"].items():
        assert field.get("description") or "$ref" in field, f"{name} is not described"


def test_the_docs_page_is_served_from_this_site_only(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), f"{url} is not served by the portal"


def test_starting_a_payment_documents_the_reused_payment_and_the_rate_limit(schema):
    operation = schema["paths"]["/api/v1/payments/"]["post"]
    assert {"200", "201", "429"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    for status in ("200", "201"):
        body = operation["responses"][status]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/PaymentOutput"}, status


def test_starting_a_payment_shows_real_examples_that_the_api_accepts(schema, client):
    from tests.factories import customer_with_bills

    operation = schema["paths"]["/api/v1/payments/"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) == 2
    by_method = {example["value"]["method"]: example["value"] for example in examples.values()}
    assert set(by_method) == {"vietqr", "redirect"}
    # Each example, given a real customer's code and bills, starts a payment.
    customer, bills = customer_with_bills(unpaid=2)
    for value in by_method.values():
        body = {**value, "customer_code": customer.code}
        if "bill_numbers" in body:
            body["bill_numbers"] = [bill.number for bill in bills]
        response = client.post("/api/v1/payments/", body, content_type="application/json")
        assert response.status_code == 201, response.content


def test_the_docs_describe_the_bank_callbacks_and_their_answers(schema):
    description = schema["info"]["description"]
    for endpoint in (
        "GET /callbacks/{partner}/ipn/",
        "POST /callbacks/momo/ipn/",
        "POST /callbacks/zalopay/callback/",
        "GET /pay/return/{partner}/",
        "POST /callbacks/transfers/",
    ):
        assert f"`{endpoint}`" in description
    assert '"RspCode": "00"' in description and '{"success": true}' in description
    assert "Apikey KEY" in description
    # The wallets' own answers: MoMo's 204, ZaloPay's return codes.
    assert "204 once stored" in description
    assert '{"return_code": 1, "return_message": "success"}' in description
    for code in ("`2` already processed", "`-1` bad MAC", "`0` not stored"):
        assert code in description


def test_the_docs_name_the_wallets_as_partners_and_their_links(schema):
    start = schema["components"]["schemas"]["PaymentCreateInputRequest"]
    assert "MOMO, ZALOPAY" in start["properties"]["partner"]["description"]
    output = schema["components"]["schemas"]["PaymentOutput"]["properties"]
    assert "wallet" in output["app_url"]["description"]
