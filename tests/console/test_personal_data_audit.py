"""Every look at personal data in the console is audited: who, what, when and how many rows."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import AuditEntry
from tests.console import factories as console
from tests.console.factories import area, billed, customer_in, paid
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db
OCT = datetime.date(2026, 10, 1)


def _only_entry(action: str) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(action=action))
    assert len(entries) == 1, [(e.action, e.target) for e in AuditEntry.objects.all()]
    entry = entries[0]
    assert timezone.now() - entry.at < datetime.timedelta(minutes=1)
    return entry


def test_searching_by_phone_is_audited_with_the_query_and_the_rows_shown(agent, agent_client):
    ht = area("PA14HT", "Điện lực Thành phố Hà Tĩnh")
    customer_in(ht, name="Nguyễn Văn An", phone="0912345678")
    customer_in(ht, name="Lê Thị Hoa", phone="0912345999")
    customer_in(ht, name="Trần Văn Ba", phone="0987000111")
    response = agent_client.get(reverse("console:search"), {"q": "0912 345"})
    assert response.status_code == 200 and "Nguyễn Văn An" in response.content.decode()
    entry = _only_entry("customer_search")
    assert entry.actor == agent and entry.target == "0912 345"
    assert entry.detail["rows"] == 2 and entry.customer is None


def test_opening_a_customer_record_is_audited_against_that_customer(agent, agent_client):
    customer = customer_in(area("PA14HT", "Điện lực Thành phố Hà Tĩnh"), name="Phạm Thị Bốn")
    assert agent_client.get(reverse("console:customer", args=[customer.code])).status_code == 200
    entry = _only_entry("customer_view")
    assert entry.actor == agent and entry.customer == customer and entry.target == customer.code
    assert entry.detail["rows"] == 1


def test_the_cash_customers_export_is_audited_with_its_row_count(finance, finance_client):
    hl = area("PA14HL", "Điện lực Hồng Lĩnh")
    for n in range(3):
        paid(billed(customer_in(hl, name=f"Khách {n}"), OCT), method="cash", partner="COUNTER")
    export = finance_client.get(reverse("console:cash-customers-csv"), {"month": "2026-10"})
    assert len(b"".join(export.streaming_content).decode().splitlines()) == 4  # header + 3
    entry = _only_entry("cash_customers_export")
    assert entry.actor == finance and entry.target == "2026-10" and entry.detail["rows"] == 3


def test_the_cash_customers_page_is_audited_with_the_rows_it_shows(finance, finance_client):
    hl = area("PA14HL", "Điện lực Hồng Lĩnh")
    paid(billed(customer_in(hl, name="Khách"), OCT), method="cash", partner="COUNTER")
    finance_client.get(reverse("console:cash-customers"), {"month": "2026-10", "area": "PA14HL"})
    entry = _only_entry("cash_customers_view")
    assert entry.actor == finance and entry.target == "2026-10-PA14HL"
    assert entry.detail["rows"] == 1


def test_the_audit_page_lists_the_views_in_vietnamese(supervisor_client):
    customer = customer_in(area("PA14HT", "Điện lực Thành phố Hà Tĩnh"), name="Phạm Thị Bốn")
    signed_in_view = reverse("console:customer", args=[customer.code])
    supervisor_client.get(signed_in_view)
    supervisor_client.get(reverse("console:search"), {"q": "pham thi"})
    page = supervisor_client.get(reverse("console:audit")).content.decode()
    assert re.search(r"<td>Xem hồ sơ khách hàng\s*</td>", page)
    assert re.search(r"<td>Tìm kiếm khách hàng\s*</td>", page)
    filtered = supervisor_client.get(reverse("console:audit"), {"action": "customer_view"})
    assert len(re.findall(r"<td>Xem hồ sơ khách hàng\s*</td>", filtered.content.decode())) == 1
    assert "Tải danh sách khách hàng trả tiền mặt (CSV)" in page  # offered as a filter
    # Looking is not an action on the customer: the record's own list stays about actions.
    record = supervisor_client.get(signed_in_view).content.decode()
    assert "Xem hồ sơ khách hàng" not in record


def test_opening_a_receipt_to_print_is_audited_against_its_customer(agent, agent_client):
    payment = console.succeeded_payment()
    page = agent_client.get(reverse("console:receipt", args=[payment.id]))
    assert page.status_code == 200 and payment.customer.name in page.content.decode()
    entry = _only_entry("receipt_view")
    assert entry.actor == agent and entry.customer == payment.customer
    assert entry.detail["rows"] == 1


def test_a_transfer_page_listing_candidate_customers_is_audited(agent, agent_client):
    customer, _ = customer_with_bills(unpaid=1, amounts=[321_000])
    console.vietqr_payment(customer)
    transfer = console.transfer(amount=321_000, content="CK tien dien thang 10")
    page = agent_client.get(reverse("console:transfer", args=[transfer.id]))
    assert page.status_code == 200
    entry = _only_entry("transfer_view")
    assert entry.actor == agent and entry.target == transfer.external_id
    assert entry.detail["rows"] == 1 and entry.detail["transfer"] == transfer.pk


def test_the_audit_page_shows_details_in_words_and_amounts_as_money(supervisor, supervisor_client):
    from console.services import audit_record

    audit_record(
        actor=supervisor,
        action="payment_refund",
        reason="Trả lại khách",
        detail={"amount": 200_000, "bills": ["HD1", "HD2"]},
    )
    page = supervisor_client.get(reverse("console:audit")).content.decode()
    assert "Số tiền: 200.000 ₫" in page and "HD1, HD2" in page
    assert "{&#x27;amount&#x27;" not in page and "{'amount'" not in page
