"""A database made before the layout (config, common, console as apps of their own) migrates in
place with its data: no table moved, the console's roles and permissions still resolve, and the
customers, bills and audit log written before are read by the new apps.

The layout itself added no migration (no model moved), so today the forward step finds nothing
to do and the test holds the tables and permissions as they were; a later move of a model runs
here between the old state's rows and the new apps' reads."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from customers.models import AuditEntry, Bill, Customer
from customers.permissions import USE_CONSOLE, VIEW_CUSTOMER

# The last migration of each app of ours when the project was four apps (portal, customers,
# payments, sandbox); portal had no models, so no table belonged to it.
BEFORE_LAYOUT = [
    ("customers", "0006_billing_files"),
    ("payments", "0009_merge_reminders_wallets"),
    ("sandbox", "0003_wallets"),
]


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_layout_migrates_with_its_data(client):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_LAYOUT)
    old = executor.loader.project_state(BEFORE_LAYOUT).apps
    tables_before = set(connection.introspection.table_names())

    area = old.get_model("customers", "ServiceArea").objects.create(code="HT", name="Hà Tĩnh")
    customer = old.get_model("customers", "Customer").objects.create(
        code="PA14HT0000001", name="Nguyễn Văn An", service_area_id=area.pk
    )
    old.get_model("customers", "Bill").objects.create(
        number="HD-2026-10-0000001",
        customer_id=customer.pk,
        period=datetime.date(2026, 10, 1),
        kwh=212,
        amount=452_160,
        due_date=datetime.date(2026, 11, 15),
    )
    agent = old.get_model("auth", "User").objects.create(username="an.agent", is_staff=True)
    agent.groups.add(old.get_model("auth", "Group").objects.get(name="agent"))
    old.get_model("customers", "AuditEntry").objects.create(
        actor_id=agent.pk, action="payment_recheck", customer_id=customer.pk, reason="hỏi lại"
    )

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert set(connection.introspection.table_names()) == tables_before
    moved = Customer.objects.get(code="PA14HT0000001")
    assert moved.name == "Nguyễn Văn An" and moved.service_area.code == "HT"
    assert Bill.objects.get(customer=moved).amount == 452_160
    assert AuditEntry.objects.get(customer=moved).reason == "hỏi lại"
    user = User.objects.get(username="an.agent")
    assert user.has_perms((USE_CONSOLE, VIEW_CUSTOMER))
    # The console app (new in the layout) lets the agent in on the permissions made before it
    # and shows the customer, with the audit entry written before.
    client.force_login(user)
    page = client.get("/console/customers/PA14HT0000001/")
    assert page.status_code == 200
    assert "hỏi lại" in page.content.decode()
