"""Who may see and do what: anonymous visitors see nothing, each role reaches only its own work.

A fixed cast (agent, supervisor, finance, a staff member with no role, a stranger) visits every
console page; then the actions that move money are attempted by the roles that may not.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from customers.models import AuditEntry, Bill
from payments.models import BankTransfer, Payment
from tests.console import factories
from tests.console.conftest import signed_in
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

AGENT, SUPERVISOR, FINANCE = "agent", "supervisor", "finance"
ALL = {AGENT, SUPERVISOR, FINANCE}
DESK = {AGENT, SUPERVISOR}  # customer work
MANAGERS = {SUPERVISOR, FINANCE}  # the dashboard and the audit log


@pytest.fixture
def world() -> dict[str, Any]:
    customer, _ = customer_with_bills(unpaid=2)
    refund = factories.payment_needing_refund()
    transfer = factories.transfer(amount=refund.amount)
    return {
        "code": customer.code,
        "succeeded": factories.succeeded_payment(),
        "redirect": factories.redirect_payment(customer),
        "refund": refund,
        "transfer": transfer,
    }


def pages(world: dict[str, Any]) -> list[tuple[str, set[str]]]:
    payment, transfer = world["redirect"], world["transfer"]
    return [
        (reverse("console:home"), ALL),
        (reverse("console:search") + "?q=nguyen", DESK),
        (reverse("console:customer", args=[world["code"]]), DESK),
        (reverse("console:cash", args=[world["code"]]), DESK),
        (reverse("console:receipt", args=[world["succeeded"].id]), DESK),
        (reverse("console:payment-recheck", args=[payment.id]), DESK),
        (reverse("console:payment-resend-receipt", args=[world["succeeded"].id]), DESK),
        (reverse("console:payment-refund", args=[world["refund"].id]), {SUPERVISOR}),
        (reverse("console:queue", args=["unmatched-transfers"]), DESK),
        (reverse("console:transfer", args=[transfer.id]), DESK),
        (reverse("console:transfer-assign", args=[transfer.id, payment.id]), DESK),
        (reverse("console:transfer-resolve", args=[transfer.id]), {SUPERVISOR}),
        (reverse("console:audit"), MANAGERS),
        (reverse("console:dashboard"), MANAGERS),
        (reverse("console:cash-customers"), MANAGERS),
        (reverse("console:cash-customers-csv"), MANAGERS),
    ]


def test_an_anonymous_visitor_is_sent_to_sign_in_from_every_page(world, client):
    for url, _roles in pages(world):
        response = client.get(url)
        assert response.status_code == 302, url
        login = reverse("console:login")
        assert response["Location"].startswith(f"{login}?next="), url
        response = client.post(url, {"reason": "x", "step": "confirm"})
        assert response.status_code in (302, 405), url
    assert not AuditEntry.objects.exists()


def test_each_role_reaches_its_own_pages_and_gets_403_elsewhere(world, agent, supervisor, finance):
    clients = {
        AGENT: signed_in(agent),
        SUPERVISOR: signed_in(supervisor),
        FINANCE: signed_in(finance),
    }
    for url, allowed in pages(world):
        for role, client in clients.items():
            response = client.get(url)
            expected = 200 if role in allowed else 403
            assert response.status_code == expected, (role, url, response.status_code)
            if expected == 403:
                assert "Không được phép" in response.content.decode()
                assert response["Cache-Control"].startswith("max-age=0")


def test_a_signed_in_user_without_a_console_role_sees_nothing():
    nobody = User.objects.create_user(username="khach", password="S3cure-pass-2026")
    client = signed_in(nobody)
    assert client.get(reverse("console:home")).status_code == 403
    assert client.get(reverse("console:dashboard")).status_code == 403


def test_an_agent_cannot_refund(world, agent_client):
    payment = world["refund"]
    url = reverse("console:payment-refund", args=[payment.id])
    assert agent_client.get(url).status_code == 403
    response = agent_client.post(url, {"reason": "Đã trả lại tiền mặt"})
    assert response.status_code == 403
    payment.refresh_from_db()
    assert payment.needs_refund and payment.status == Payment.Status.SUCCEEDED
    assert not AuditEntry.objects.filter(action="payment_refund").exists()
    # Nor is the button offered on the customer page.
    page = agent_client.get(reverse("console:customer", args=[payment.customer.code]))
    assert url not in page.content.decode()


def test_an_agent_cannot_close_a_transfer(world, agent_client):
    transfer = world["transfer"]
    url = reverse("console:transfer-resolve", args=[transfer.id])
    assert agent_client.post(url, {"reason": "Không phải tiền điện"}).status_code == 403
    transfer.refresh_from_db()
    assert transfer.status == BankTransfer.Status.UNMATCHED


def test_finance_cannot_take_cash_ask_the_bank_or_match_transfers(world, finance_client):
    code, payment, transfer = world["code"], world["redirect"], world["transfer"]
    unpaid = list(Bill.objects.filter(customer__code=code).values_list("number", flat=True))
    attempts = [
        (
            reverse("console:cash", args=[code]),
            {"step": "confirm", "bills": unpaid, "channel": "COUNTER", "note": "x"},
        ),
        (reverse("console:payment-recheck", args=[payment.id]), {"reason": "x"}),
        (reverse("console:payment-resend-receipt", args=[world["succeeded"].id]), {"reason": "x"}),
        (reverse("console:transfer-assign", args=[transfer.id, payment.id]), {"reason": "x"}),
        (reverse("console:payment-refund", args=[world["refund"].id]), {"reason": "x"}),
    ]
    for url, data in attempts:
        assert finance_client.post(url, data).status_code == 403, url
    assert not Bill.objects.filter(customer__code=code, status=Bill.Status.PAID).exists()
    assert not AuditEntry.objects.exists()


def test_an_agent_cannot_see_the_managers_numbers_or_export_customers(agent_client):
    for name in ("console:dashboard", "console:cash-customers", "console:cash-customers-csv"):
        assert agent_client.get(reverse(name)).status_code == 403
    assert agent_client.get(reverse("console:audit")).status_code == 403


def test_a_superuser_may_do_everything(world):
    root = User.objects.create_superuser("root", password="S3cure-pass-2026")
    client = signed_in(root)
    for url, _roles in pages(world):
        assert client.get(url).status_code == 200, url


def test_the_menu_offers_only_what_the_role_may_open(agent_client, finance_client):
    agent_home = agent_client.get(reverse("console:home")).content.decode()
    assert reverse("console:search") in agent_home
    assert reverse("console:dashboard") not in agent_home
    finance_home = finance_client.get(reverse("console:home")).content.decode()
    assert reverse("console:dashboard") in finance_home
    assert reverse("console:search") not in finance_home


def test_actions_only_answer_get_and_post(world, supervisor_client: Client):
    url = reverse("console:payment-refund", args=[world["refund"].id])
    assert supervisor_client.put(url).status_code == 405
    assert supervisor_client.get(reverse("console:logout")).status_code == 405
