"""A direct line to Redis for the lookup's two hot operations: its rate limit and its cache.

Django's cache API builds a Redis client for every call and pickles every value; on the
portal's busiest path (every household, every bank app) that costs more than the lookup's own
queries. One client per process, with its connection pool, and JSON values do the same work for
a fraction of it. Keys are Django's (same prefix and version), so both views of the cache agree.
Without REDIS_URL (the embedded default) everything goes through Django's cache instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import default_key_func
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


@cache
def _client(url: str) -> redis.Redis:
    # Short timeouts: an unreachable cache must fail fast so the caller can do without it.
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis() -> redis.Redis | None:
    return _client(settings.REDIS_URL) if settings.REDIS_URL else None


@cache
def _key_maker() -> Callable[[str], str]:
    # Django's make_and_validate_key looks the backend up and formats its prefix on every call
    # (three per lookup: measured); the prefix is fixed by the settings, so it is made once.
    backend = caches["default"]
    if backend.key_func is not default_key_func:
        raise ImproperlyConfigured("common.fastcache makes keys as Django's default KEY_FUNCTION")
    prefix = backend.make_key("")
    validate = backend.validate_key

    def make(key: str) -> str:
        full = prefix + key
        validate(full)
        return full

    return make


def _forget_key_maker(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        _key_maker.cache_clear()


setting_changed.connect(_forget_key_maker)


def _key(key: str) -> str:
    return _key_maker()(key)


def get_json(key: str) -> Any:
    client = _redis()
    if client is None:
        return caches["default"].get(key)
    raw = client.get(_key(key))
    return None if raw is None else json.loads(raw)


def set_json(key: str, value: Any, timeout: int) -> None:
    client = _redis()
    if client is None:
        caches["default"].set(key, value, timeout=timeout)
        return
    client.set(_key(key), json.dumps(value, separators=(",", ":")), ex=timeout)


def set_bytes(key: str, value: bytes, timeout: int) -> None:
    """Keep `value` as it is: read back with count_in_window(..., raw=True)."""
    client = _redis()
    if client is None:
        caches["default"].set(key, value, timeout=timeout)
        return
    client.set(_key(key), value, ex=timeout)


def add(key: str, timeout: int) -> bool:
    """Set a flag unless it is set; True when this call set it (one round trip on Redis)."""
    client = _redis()
    if client is None:
        return bool(caches["default"].add(key, 1, timeout=timeout))
    return bool(client.set(_key(key), b"1", nx=True, ex=timeout))


def delete_many(keys: list[str]) -> None:
    client = _redis()
    if client is None:
        caches["default"].delete_many(keys)
        return
    for start in range(0, len(keys), 1000):
        client.delete(*[_key(key) for key in keys[start : start + 1000]])


def delete_prefixed(prefix: str) -> bool:
    """Delete every key that starts with `prefix`, at the cost of the keys there are, not of the
    keys that might be. False without Redis: Django's caches cannot list keys by name, so the
    caller names them (clearing the whole cache would also clear sign-in limits)."""
    client = _redis()
    if client is None:
        return False
    pattern = _key(prefix).replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    pattern = pattern.replace("[", "\\[") + "*"
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) == 1000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)
    return True


def count_in_window(
    key: str, timeout: int, *, also_get: str | None = None, raw: bool = False
) -> tuple[int, Any]:
    """Add one to a counter that lives `timeout` seconds from its first hit; return it, with
    the JSON value under `also_get` when asked (None when absent), or with `raw` the bytes kept
    there by set_bytes.

    On Redis one round trip (INCR, EXPIRE only when the key is new, and the GET); elsewhere
    add() then incr(), both atomic on the backends Django ships, and a get.
    """
    client = _redis()
    if client is None:
        backend = caches["default"]
        value = backend.get(also_get) if also_get is not None else None
        if backend.add(key, 1, timeout=timeout):
            return 1, value
        try:
            return int(backend.incr(key)), value
        except ValueError:  # expired between add() and incr()
            backend.add(key, 1, timeout=timeout)
            return 1, value
    full_key = _key(key)
    pipe = client.pipeline(transaction=False)
    pipe.incr(full_key)
    pipe.expire(full_key, timeout, nx=True)
    if also_get is not None:
        pipe.get(_key(also_get))
    count, _, *kept = pipe.execute()
    value = kept[0] if kept else None
    if raw or value is None:
        return int(count), value
    try:
        return int(count), json.loads(value)
    except ValueError:  # not ours to read: as if absent
        return int(count), None
