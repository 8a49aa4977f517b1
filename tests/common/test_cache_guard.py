"""The one guard around the cache: an outage is logged and the caller goes on with its default."""

from __future__ import annotations

import logging

import pytest
import redis

from common.cache_guard import outage_tolerated


def test_an_outage_is_logged_and_the_caller_keeps_its_default(caplog):
    value = "default"
    with (
        caplog.at_level(logging.WARNING, logger="common.cache_guard"),
        outage_tolerated("the bills of %s read from the database", "PA14HT0000001"),
    ):
        raise redis.ConnectionError("connection refused")
        value = "from the cache"  # never reached: the guard leaves the block at the error
    assert value == "default"
    assert caplog.messages == [
        "cache unavailable: the bills of PA14HT0000001 read from the database"
    ]


def test_a_working_cache_passes_through_silently(caplog):
    with caplog.at_level(logging.WARNING, logger="common.cache_guard"), outage_tolerated("x"):
        value = "from the cache"
    assert value == "from the cache"
    assert caplog.messages == []


def test_what_is_not_an_error_still_stops_the_process():
    with pytest.raises(KeyboardInterrupt), outage_tolerated("nothing"):
        raise KeyboardInterrupt
