"""The floor of the lookup benchmark: the lookup API's work with no framework at all.

A plain WSGI function, served by the same gunicorn settings, doing what
`GET /api/v1/customers/{code}/bills/` must do for a customer not in the cache: count the
client's lookup and read the cached answer in one Redis round trip, run the lookup's own query
(prepared, on a connection kept per thread), mask the name and address and build the same JSON
body with the API's own functions (customers.selectors.cached_form and lookup_api_body), and
store it in the cache. No routing, middleware, request or response objects, security
headers or error handling: what is left is the cost of the two lookups themselves.

Run as `gunicorn bench.floor:application` with the benchmark's environment.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import django
import psycopg
import redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()  # only to read the settings and the lookup's SQL, never on a request

from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402

from customers.selectors import (  # noqa: E402
    _LOOKUP_SQL,
    HISTORY_PERIODS,
    api_cache_key,
    cached_form,
    lookup_api_body,
)

_redis = redis.Redis.from_url(settings.REDIS_URL)
_local = threading.local()
_CACHE = caches["default"]
_PERIOD = 60


def _database() -> psycopg.Connection[Any]:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = psycopg.connect(
            os.environ["DATABASE_URL"], autocommit=True
        )
    return connection


def application(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/health/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    code = path.split("/")[-3]  # /floor/customers/{code}/bills/
    window = int(time.time() // _PERIOD)
    counter = _CACHE.make_and_validate_key(f"rl:lookup:{environ.get('REMOTE_ADDR')}:{window}")
    key = _CACHE.make_and_validate_key(api_cache_key(code))
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(counter)
    pipe.expire(counter, _PERIOD + 1, nx=True)
    pipe.get(key)
    _count, _, cached = pipe.execute()
    if cached is None:
        rows = (
            _database().execute(_LOOKUP_SQL, [code, HISTORY_PERIODS, code], prepare=True).fetchall()
        )
        cached = json.dumps(
            lookup_api_body(cached_form(rows)), ensure_ascii=False, separators=(",", ":")
        ).encode()
        _redis.set(key, cached, ex=settings.LOOKUP_CACHE_SECONDS)
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(cached)))]
    )
    return [cached]
