"""The set-based loader's PostgreSQL settings (work_mem, jit) last only as long as the load, also
when the import runs inside a longer transaction (its own atomic block is then a savepoint).
PostgreSQL only: `make test` runs test_import_bills.py alone on SQLite."""

from __future__ import annotations

import io

import pytest
from django.db import connection

from customers.billing_import import ImportFileError, import_bills
from tests.billing.test_import_bills import GOOD, _file

pytestmark = pytest.mark.django_db  # the test's own transaction is the longer one


def _settings() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('work_mem'), current_setting('jit')")
        return cursor.fetchone()  # type: ignore[return-value]


def test_a_load_puts_back_the_settings_it_made():
    before = _settings()
    result = import_bills(_file(GOOD), set_based=True)
    assert result.bills_created == len(GOOD)
    assert _settings() == before


def test_a_load_that_fails_half_way_puts_them_back_too():
    """Put back by the rollback of the import's own atomic block (a savepoint here), not by the
    loader: this holds the import to leaving nothing behind when it fails."""
    before = _settings()
    damaged = _file(GOOD).getvalue() + "PA14HT0000009,x\x00\n"
    with pytest.raises(ImportFileError, match="NUL"):
        import_bills(io.StringIO(damaged), set_based=True)
    assert _settings() == before
