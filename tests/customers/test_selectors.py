"""The public lookup: one prepared query, masked data only, cached until a payment settles."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from django.db import connection, transaction

from customers import selectors
from payments import services
from tests import factories
from tests.portal.demo import household_with_history, months_ago

pytestmark = pytest.mark.django_db


def _prepared_lookups() -> int:
    return len(_prepared_lookup_runs())


def _prepared_lookup_runs() -> list[tuple[object, int]]:
    """Each lookup statement prepared on this connection: when, and how often it ran."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prepare_time, generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ["%FROM customers_customer c%"],
        )
        return cursor.fetchall()


def test_it_reads_a_customer_and_the_bills_in_one_query(django_assert_num_queries, monkeypatch):
    household = household_with_history(months=14)
    selectors.customer_bills_lookup(code=factories.CustomerFactory().code)  # prepared now
    [(_prepared_at, runs)] = _prepared_lookup_runs()
    # Counted where every statement of the connection goes, Django's cursors or not.
    sent = []
    execute = psycopg.Cursor.execute

    def counted(cursor, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(query)
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    with django_assert_num_queries(1) as captured:
        lookup = selectors.customer_bills_lookup(code=household.customer.code)
    monkeypatch.undo()
    assert sent == [selectors._LOOKUP_SQL]
    [sql] = (query["sql"] for query in captured.captured_queries)
    assert household.customer.code in sql
    assert _prepared_lookup_runs() == [(_prepared_at, runs + 1)]  # run by name, once
    # On the unique code index, and on the (customer, period) unique index.
    assert "WHERE c.code = " in selectors._LOOKUP_SQL
    assert "WHERE customer_id = " in selectors._LOOKUP_SQL
    assert lookup is not None and len(lookup.bills) == 12
    assert [bill.period for bill in lookup.bills] == sorted(
        (bill.period for bill in lookup.bills), reverse=True
    )


@pytest.mark.django_db(transaction=True)
def test_a_connection_prepares_the_lookup_once_and_runs_it_by_name():
    household = household_with_history()
    connection.close()  # a new connection: nothing prepared on it
    selectors.customer_bills_lookup(code=household.customer.code)
    [(prepared_at, runs)] = _prepared_lookup_runs()
    for _ in range(3):
        selectors.bills_cache_forget(customer_codes=[household.customer.code])
        assert selectors.customer_bills_lookup(code=household.customer.code) is not None
    assert _prepared_lookup_runs() == [(prepared_at, runs + 3)]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_does_not_break_the_next_lookup():
    household = household_with_history()
    code = household.customer.code
    selectors.customer_bills_lookup(code=code)
    with pytest.raises(RuntimeError), transaction.atomic():
        selectors.bills_cache_forget(customer_codes=[code])
        assert selectors.customer_bills_lookup(code=code) is not None
        raise RuntimeError("rolled back")
    selectors.bills_cache_forget(customer_codes=[code])
    assert selectors.customer_bills_lookup(code=code) is not None
    assert _prepared_lookups() == 1


def test_it_answers_a_second_lookup_from_the_cache(django_assert_num_queries):
    household = household_with_history()
    first = selectors.customer_bills_lookup(code=household.customer.code)
    with django_assert_num_queries(0):
        second = selectors.customer_bills_lookup(code=household.customer.code)
    assert second == first


def test_a_settled_payment_clears_the_cached_lookup(django_capture_on_commit_callbacks):
    household = household_with_history(unpaid=2)
    before = selectors.customer_bills_lookup(code=household.customer.code)
    assert before is not None and len(before.unpaid) == 2
    with django_capture_on_commit_callbacks(execute=True):
        services.payment_record_cash(
            customer_code=household.customer.code,
            bill_numbers=[household.unpaid[0].number],
            actor=factories.staff_user("agent"),
        )
    after = selectors.customer_bills_lookup(code=household.customer.code)
    assert after is not None and [b.number for b in after.unpaid] == [household.unpaid[1].number]
    assert after.total_due == household.unpaid[1].amount


def test_it_lists_the_last_twelve_periods_newest_first_and_older_debts_too():
    customer = factories.CustomerFactory()
    old_debt = factories.BillFactory(customer=customer, months_ago=16, amount=300_000)
    old_paid = [factories.BillFactory(customer=customer, months_ago=age) for age in (15, 14, 13)]
    services.payment_record_cash(
        customer_code=customer.code,
        bill_numbers=[bill.number for bill in old_paid],
        actor=factories.staff_user("agent"),
    )
    for age in range(12, 0, -1):
        factories.BillFactory(customer=customer, months_ago=age, amount=100_000)
    lookup = selectors.customer_bills_lookup(code=customer.code)
    assert lookup is not None
    periods = [bill.period for bill in lookup.bills]
    # The twelve latest periods, newest first, then the debt; old paid bills are left out.
    assert periods == [*(months_ago(age) for age in range(1, 13)), old_debt.period]
    assert lookup.total_due == 12 * 100_000 + 300_000
    assert [bill.period for bill in lookup.history] == periods[:12]
    assert lookup.unpaid[0].number == old_debt.number


def test_it_finds_no_inactive_or_unknown_customer():
    factories.CustomerFactory(code="PA14HT0000001", is_active=False)
    assert selectors.customer_bills_lookup(code="PA14HT0000001") is None
    assert selectors.customer_bills_lookup(code="PA14HT9999999") is None


def test_the_lookup_holds_nothing_but_masked_public_data():
    household = household_with_history()
    lookup = selectors.customer_bills_lookup(code=household.customer.code)
    assert lookup is not None
    assert lookup.name == "Trần T** H** N**"
    assert lookup.address == "***, phường Nam Hà, TP Hà Tĩnh"
    text = repr(dataclasses.asdict(lookup))
    for secret in ("0912 345 678", "0912345678", "nhung.tran@example.vn", "Hà Huy Tập"):
        assert secret not in text


def test_overdue_is_decided_when_read_not_when_cached():
    household = household_with_history(unpaid=2)
    lookup = selectors.customer_bills_lookup(code=household.customer.code)
    assert lookup is not None
    overdue = {bill.number: bill.is_overdue for bill in lookup.unpaid}
    assert overdue == {household.unpaid[0].number: True, household.unpaid[1].number: False}
    assert lookup.has_overdue


def test_forgetting_every_lookup_leaves_the_rest_of_the_cache():
    """On Redis (the test settings' cache) only the lookups' keys go, by their prefix."""
    from django.core.cache import cache

    cache.set(selectors.bills_cache_key("PA14HT0000001"), {"bills": []})
    cache.set(selectors.bills_cache_key("PA14XX0000009"), {"bills": []})
    cache.set("ratelimit:lookup:203.0.113.9", 3)
    selectors.bills_cache_forget_all()
    assert cache.get(selectors.bills_cache_key("PA14HT0000001")) is None
    assert cache.get(selectors.bills_cache_key("PA14XX0000009")) is None
    assert cache.get("ratelimit:lookup:203.0.113.9") == 3


@pytest.mark.django_db(transaction=True)
def test_a_prepared_lookup_lost_by_the_server_is_prepared_again():
    """A pooler's DISCARD ALL, or a migration that changed a column, and the statement the
    connection remembers is gone or stale: the lookup prepares it again, not a 500."""
    household = household_with_history()
    assert selectors.customer_bills_lookup(code=household.customer.code) is not None
    # Behind psycopg's back, as a pooler would: it still believes the statement is there.
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    assert _prepared_lookups() == 0
    selectors.bills_cache_forget(customer_codes=[household.customer.code])
    lookup = selectors.customer_bills_lookup(code=household.customer.code)
    assert lookup is not None and lookup.code == household.customer.code
    assert _prepared_lookups() == 1


@pytest.mark.django_db(transaction=True)
def test_a_lookup_whose_result_changed_type_is_prepared_again():
    """A migration changed a column the lookup returns: the statement's plan cannot run any
    more ("cached plan must not change result type"); it is prepared again, not a 500."""
    household = household_with_history()
    assert selectors.customer_bills_lookup(code=household.customer.code) is not None
    session = connection.connection.pgconn  # behind psycopg's back, as another session would
    session.exec_(b"ALTER TABLE customers_servicearea ALTER COLUMN name TYPE text")
    try:
        selectors.bills_cache_forget(customer_codes=[household.customer.code])
        lookup = selectors.customer_bills_lookup(code=household.customer.code)
        assert lookup is not None and lookup.service_area_name
    finally:
        session.exec_(b"ALTER TABLE customers_servicearea ALTER COLUMN name TYPE varchar(100)")


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:5],  # no bills at all
        lambda data: [*data[:5], [[*bill[:2], "last month", *bill[3:]] for bill in data[5]]],
        lambda data: [*data[:5], [[*bill[:4], "12", *bill[5:]] for bill in data[5]]],
    ],
    ids=["shape", "date", "amount"],
)
def test_a_damaged_cached_lookup_is_read_again_from_the_database(damage):
    from common import fastcache

    customer = household_with_history().customer
    key = selectors.bills_cache_key(customer.code)
    good = selectors.customer_bills_data(code=customer.code)
    fastcache.set_json(key, damage(good), 60)
    assert selectors.customer_bills_data(code=customer.code) == good
    assert selectors.customer_bills_lookup(code=customer.code) is not None
    assert fastcache.get_json(key) == good  # and cached again as it should be


def test_the_api_s_answer_is_cached_as_sent_and_cleared_with_the_lookup(
    django_assert_num_queries,
):
    from common import fastcache

    customer = household_with_history(unpaid=1).customer
    first = selectors.lookup_api_answer(code=customer.code, cached=None)
    assert first is not None and first.startswith(b'{"customer":{')
    decision, kept = fastcache.count_in_window(
        "test:window", 60, also_get=selectors.api_cache_key(customer.code), raw=True
    )
    assert kept == first  # the bytes as sent, nothing to decode
    with django_assert_num_queries(0):
        assert selectors.lookup_api_answer(code=customer.code, cached=kept) == first
    selectors.bills_cache_forget(customer_codes=[customer.code])
    assert fastcache.count_in_window(
        "test:window", 60, also_get=selectors.api_cache_key(customer.code), raw=True
    ) == (decision + 1, None)
    selectors.lookup_api_answer(code=customer.code, cached=None)
    selectors.bills_cache_forget_all()
    assert fastcache.get_json(selectors.api_cache_key(customer.code)) is None


@pytest.mark.parametrize("kept", [b"garbage", b'["PA14", "old form"]'])
def test_a_damaged_cached_api_answer_is_answered_again_from_the_database(kept):
    from common import fastcache

    customer = household_with_history().customer
    good = selectors.lookup_api_answer(code=customer.code, cached=None)
    fastcache.set_bytes(selectors.api_cache_key(customer.code), kept, 60)
    assert selectors.lookup_api_answer(code=customer.code, cached=kept) == good


def test_without_redis_the_api_s_answer_is_kept_in_django_s_cache(settings):
    from common import fastcache

    settings.REDIS_URL = ""
    customer = household_with_history().customer
    answer = selectors.lookup_api_answer(code=customer.code, cached=None)
    count, kept = fastcache.count_in_window(
        "test:window:local", 60, also_get=selectors.api_cache_key(customer.code), raw=True
    )
    assert kept == answer
