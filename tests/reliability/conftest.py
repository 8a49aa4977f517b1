"""Fixtures of the reliability suite: a private stack of processes per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.reliability import support


@pytest.fixture
def portal_stack(request: pytest.FixtureRequest, transactional_db: Any) -> Iterator[support.Stack]:
    """A private Redis for this test; start gunicorn and workers on it with `start_web()` and
    `start_worker()`. Everything is stopped afterwards, before the database is flushed."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.fail("the reliability suite needs DATABASE_URL=postgres://... (make test sets it)")
    with support.stack(request.node.name.removeprefix("test_")[:24]) as running:
        yield running
