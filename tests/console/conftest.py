"""Console fixtures: a signed-in client for each role (the role groups: tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


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
