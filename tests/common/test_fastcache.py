"""common.fastcache's keys are the ones Django's cache makes, whatever the cache settings."""

from __future__ import annotations

import copy

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings

from common import fastcache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="fastcache keys only on Redis")


def test_a_key_is_the_one_django_makes():
    assert fastcache._key("bills:v2:PA14HT0012345") == caches["default"].make_and_validate_key(
        "bills:v2:PA14HT0012345"
    )


def test_a_changed_prefix_or_version_is_followed():
    fastcache._key("warm")
    changed = copy.deepcopy(settings.CACHES)
    changed["default"].update(KEY_PREFIX="other", VERSION=7)
    with override_settings(CACHES=changed):
        assert fastcache._key("k") == "other:7:k" == caches["default"].make_key("k")
    assert fastcache._key("k") == caches["default"].make_key("k") != "other:7:k"


def test_a_key_django_would_warn_about_is_still_warned_about():
    with pytest.warns(Warning, match="characters"):
        fastcache._key("a key with spaces")
