"""The lookup budget per client address, kept in the shared cache."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from common import ratelimit
from tests.portal.demo import household_with_history

DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there: a Redis outage
    }
}


def test_it_reads_rates_as_count_per_period():
    assert ratelimit.parse_rate("30/m") == (30, 60)
    assert ratelimit.parse_rate("5/s") == (5, 1)
    assert ratelimit.parse_rate("1000/d") == (1000, 86400)


def test_it_refuses_past_the_budget_and_says_when_to_come_back():
    decisions = [ratelimit.hit("test", "10.0.0.1", "3/h") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[0].retry_after == 0
    assert 1 <= decisions[3].retry_after <= 3601


def test_each_address_and_scope_has_its_own_budget():
    assert ratelimit.hit("test", "10.0.0.1", "1/h").allowed
    assert not ratelimit.hit("test", "10.0.0.1", "1/h").allowed
    assert ratelimit.hit("test", "10.0.0.2", "1/h").allowed
    assert ratelimit.hit("other", "10.0.0.1", "1/h").allowed


def test_it_trusts_forwarded_addresses_only_behind_configured_proxies(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
    )
    settings.TRUSTED_PROXY_COUNT = 0
    assert ratelimit.client_address(request) == "10.1.1.1"
    settings.TRUSTED_PROXY_COUNT = 1
    # The proxy appended the address it saw; whatever the client wrote before it is ignored.
    assert ratelimit.client_address(request) == "203.0.113.7"


@pytest.mark.django_db
def test_a_cache_outage_lets_lookups_through_from_the_database(settings, client):
    household = household_with_history()
    settings.CACHES = DEAD_REDIS
    settings.REDIS_URL = DEAD_REDIS["default"]["LOCATION"]
    settings.LOOKUP_RATE_LIMIT = "1/m"
    assert ratelimit.hit("test", "10.0.0.1", "1/m").allowed
    for _ in range(2):
        response = client.get(f"/bills/{household.customer.code}/")
        assert response.status_code == 200
        assert "Trần T** H** N**" in response.content.decode()
    api = client.get(f"/api/v1/customers/{household.customer.code}/bills/")
    assert api.status_code == 200 and api.json()["total_due"] > 0


def test_a_period_may_be_several_units_and_a_budget_can_be_read_without_counting():
    assert ratelimit.parse_rate("20/15m") == (20, 900)
    for _ in range(2):
        assert ratelimit.spent("test", "10.0.0.1", "2/15m").allowed  # reading counts nothing
    ratelimit.hit("test", "10.0.0.1", "2/15m")
    ratelimit.hit("test", "10.0.0.1", "2/15m")
    refused = ratelimit.spent("test", "10.0.0.1", "2/15m")
    assert not refused.allowed and 1 <= refused.retry_after <= 901
    ratelimit.forget("test", "10.0.0.1", "2/15m")
    assert ratelimit.spent("test", "10.0.0.1", "2/15m").allowed
