"""docs/collection_client.py works against a running portal, exactly as the docs show it."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

from payments.channels.collection import signing
from payments.models import Payment
from tests.factories import customer_with_bills

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "docs" / "collection_client.py"
GUIDE = ROOT / "docs" / "collection-api.md"
SECRET = "docs-example-secret-0123456789"

pytestmark = pytest.mark.django_db(transaction=True)


def _load_client() -> ModuleType:
    spec = importlib.util.spec_from_file_location("collection_client", CLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def vcb(settings):
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": SECRET}}


def _worked_example() -> dict[str, str]:
    """The guide's worked signature example: its table, and the exact string it says is signed."""
    guide = GUIDE.read_text(encoding="utf-8")
    section = guide[guide.index("Worked example") :]
    rows = dict(re.findall(r"^\| (\w+) \| `([^`]+)` \|$", section, re.M))
    assert {"secret", "timestamp", "method", "path", "body", "signature"} <= set(rows), rows
    signed = re.search(r"The exact string signed.*?```text\n(?P<text>.*?)\n```", section, re.S)
    assert signed, "the guide must show the exact string signed"
    shell = re.search(r"From a shell:\s*```sh\n(?P<command>.*?)\n```", section, re.S)
    assert shell, "the guide must show the shell command"
    return {**rows, "string": signed["text"], "shell": shell["command"]}


def test_the_guides_worked_example_verifies_with_the_portal_and_the_example_client():
    example = _load_client()
    vector = _worked_example()
    args = (vector["timestamp"], vector["method"], vector["path"], vector["body"].encode())
    assert signing.signed_message(*args) == vector["string"].encode()
    assert example.string_to_sign(*args) == vector["string"].encode()
    assert signing.sign(vector["secret"], *args) == vector["signature"]
    assert example.sign(vector["secret"], *args) == vector["signature"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_guides_shell_command_gives_the_worked_examples_signature():
    vector = _worked_example()
    run = subprocess.run(
        ["sh", "-c", vector["shell"]], capture_output=True, text=True, timeout=30, check=True
    )
    assert run.stdout.strip().endswith(vector["signature"]), run.stdout


def test_the_example_client_inquires_pays_repeats_and_reverses(live_server, vcb):
    example = _load_client()
    customer, bills = customer_with_bills(unpaid=2, amounts=[310_000, 290_000])
    client = example.CollectionClient(live_server.url, "VCB", SECRET)

    owed = client.inquiry(customer.code.lower())
    assert owed.status_code == 200, owed.text
    assert owed.json()["total_due"] == 600_000
    numbers = [bill["number"] for bill in owed.json()["bills"]]
    assert numbers == [bill.number for bill in bills]

    paid_at = datetime.now(example.GMT7)
    paid = client.pay(
        transaction_id="VCB-DOCS-1",
        customer_code=customer.code,
        bill_numbers=numbers,
        amount=600_000,
        paid_at=paid_at,
    )
    assert paid.status_code == 201, paid.text
    again = client.pay(
        transaction_id="VCB-DOCS-1",
        customer_code=customer.code,
        bill_numbers=numbers,
        amount=600_000,
        paid_at=paid_at,
    )
    assert again.status_code == 200 and again.json() == paid.json()
    assert again.headers["Idempotent-Replayed"] == "true"

    reversed_ = client.reverse(transaction_id="VCB-DOCS-1", reason="customer cancelled")
    assert reversed_.status_code == 200 and reversed_.json() == {"status": "reversed"}
    assert Payment.objects.get(provider_txn_id="VCB-DOCS-1").status == Payment.Status.REVERSED

    wrong = example.CollectionClient(live_server.url, "VCB", "not-the-secret").inquiry(
        customer.code
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


def test_the_example_runs_from_the_command_line(live_server, vcb):
    customer, _bills = customer_with_bills(unpaid=1)
    base = [sys.executable, str(CLIENT), "--base-url", live_server.url, "--partner", "VCB"]
    run = subprocess.run(
        [*base, "--secret", SECRET, "pay", customer.code, "VCB-CLI-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "HTTP 200" in run.stdout and "HTTP 201" in run.stdout
    assert Payment.objects.filter(provider_txn_id="VCB-CLI-1").exists()
    refused = subprocess.run(
        [*base, "--secret", "wrong", "inquiry", customer.code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "HTTP 401" in refused.stdout


@pytest.mark.django_db
def test_the_partners_docs_page_shows_the_worked_signature_the_portal_accepts(client):
    from payments.channels.collection import views

    description = client.get("/api/v1/collection/schema/?format=json").json()["info"]["description"]
    expected = signing.sign(
        views.EXAMPLE_SECRET,
        views.EXAMPLE_TIMESTAMP,
        "POST",
        views.EXAMPLE_PATH,
        views.EXAMPLE_BODY.encode(),
    )
    assert expected in description and views.EXAMPLE_SECRET in description
    # The same example as the partners' guide in docs/.
    guide = (Path(__file__).resolve().parents[2] / "docs" / "collection-api.md").read_text()
    assert f"| signature | `{expected}` |" in guide
    assert "PARTNER_VCB_SECRET=" in description
