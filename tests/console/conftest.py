"""Console fixtures: the role groups, and a signed-in browser client for each role."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.test import Client

_roles_migration = importlib.import_module("customers.migrations.0004_console_roles")


@pytest.fixture(autouse=True)
def _roles(request: pytest.FixtureRequest) -> None:
    """The role groups come from a data migration; any transactional test (anyone's) flushes
    them, so load them again before each test that touches the database."""
    names = set(request.fixturenames)
    marker = request.node.get_closest_marker("django_db")
    if not (marker or {"db", "transactional_db", "live_server"} & names):
        return
    request.getfixturevalue("_partners")
    _roles_migration.load(apps, None)


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Sign-in tests hash many passwords; the production hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def agent_client(agent: Any) -> Client:
    return signed_in(agent)


@pytest.fixture
def supervisor_client(supervisor: Any) -> Client:
    return signed_in(supervisor)


@pytest.fixture
def finance_client(finance: Any) -> Client:
    return signed_in(finance)


@pytest.fixture
def sms_outbox(settings: Any) -> list[tuple[str, str]]:
    from payments.notifications import LocmemSMSBackend

    settings.SMS_BACKEND = "payments.notifications.LocmemSMSBackend"
    LocmemSMSBackend.outbox.clear()
    return LocmemSMSBackend.outbox
