"""The collection API has its own OpenAPI document, apart from the public one."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

SCHEMA = "/api/v1/collection/schema/"
DOCS = "/api/v1/collection/docs/"
OPERATIONS = {
    "/api/v1/collection/inquiry/",
    "/api/v1/collection/payments/",
    "/api/v1/collection/reversals/",
}


@pytest.fixture
def schema() -> dict:
    response = Client().get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_collection_schema_is_valid_openapi_3(schema):
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Collection API for partner banks"


def test_it_documents_only_the_three_operations(schema):
    assert set(schema["paths"]) == OPERATIONS
    assert {method for path in schema["paths"].values() for method in path} == {"post"}


def test_every_operation_requires_all_three_headers(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {name: (s["type"], s["in"], s["name"]) for name, s in schemes.items()} == {
        "PartnerCode": ("apiKey", "header", "X-Partner-Code"),
        "Timestamp": ("apiKey", "header", "X-Timestamp"),
        "Signature": ("apiKey", "header", "X-Signature"),
    }
    for path in OPERATIONS:
        operation = schema["paths"][path]["post"]
        # One requirement object with three keys: all three headers together (AND, not OR).
        assert operation["security"] == [{"PartnerCode": [], "Timestamp": [], "Signature": []}]
        assert "401" in operation["responses"]


def test_it_documents_the_contracts_answers(schema):
    payments = schema["paths"]["/api/v1/collection/payments/"]["post"]
    assert {"200", "201", "400", "401", "404", "409", "422"} <= set(payments["responses"])
    accepted = payments["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    name = accepted.rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {
        "status",
        "payment_id",
        "receipt_number",
    }
    reversal = schema["paths"]["/api/v1/collection/reversals/"]["post"]
    assert {"200", "404", "409"} <= set(reversal["responses"])


def test_the_public_schema_leaves_the_collection_api_out():
    public = json.loads(Client().get("/api/schema/", {"format": "json"}).content)
    assert not [path for path in public["paths"] if path.startswith("/api/v1/collection/")]
    assert "PartnerCode" not in public.get("components", {}).get("securitySchemes", {})


def test_the_docs_page_loads_its_script_from_this_origin():
    client = Client()
    page = client.get(DOCS)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>" not in html  # nothing inline: the CSP allows scripts from 'self' only
    assert "script-src 'self'" in page["Content-Security-Policy"]
    script = client.get(DOCS, {"script": ""})
    assert script.status_code == 200
    assert SCHEMA in script.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_docs_ui_shows_the_operations_without_breaking_the_csp(page, live_server):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(live_server.url + DOCS)
    page.get_by_text("/api/v1/collection/payments/").first.wait_for()
    for path in OPERATIONS:
        assert page.get_by_text(path, exact=True).count() >= 1
    assert not [p for p in problems if "Content Security Policy" in p], problems
