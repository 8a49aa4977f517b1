"""The floors of the lookup benchmark: the lookups' work with no framework at all.

A plain WSGI function, served by the same gunicorn settings, doing what each lookup must do for
a customer not in the cache:

- `/floor/customers/{code}/bills/`, for `GET /api/v1/customers/{code}/bills/`: count the
  client's lookup and read the cached answer in one Redis round trip, run the lookup's own query
  (prepared, on a connection kept per thread), mask the name and address and build the same JSON
  body with the API's own functions (customers.selectors.cached_form and lookup_api_body), and
  store it in the cache;
- `/floor/bills/{code}/`, for `GET /bills/{code}/`: the same round trip and query, the cached
  form stored, and the same page built by the page's own presenter and skeleton
  (portal/views/bills_page.py), with a new visitor's CSRF token and cookie.

No routing, middleware, handler or response objects, security headers or error handling: what
is left is the cost of the lookups themselves and of what they answer.

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
django.setup()  # the settings, the lookup's SQL, and the page's presenter and templates

from django.conf import settings  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.http import HttpRequest  # noqa: E402
from django.http.cookie import SimpleCookie  # noqa: E402
from django.utils import translation  # noqa: E402

from customers.selectors import (  # noqa: E402
    _LOOKUP_SQL,
    HISTORY_PERIODS,
    CustomerBills,
    api_cache_key,
    bills_cache_key,
    cached_form,
    lookup_api_body,
)
from portal.views import bills_page  # noqa: E402
from portal.views.lookup import usable_gateways  # noqa: E402

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
    if path.startswith("/floor/bills/"):
        return _page(environ, start_response, path.split("/")[-2])  # /floor/bills/{code}/
    code = path.split("/")[-3]  # /floor/customers/{code}/bills/
    key = _CACHE.make_and_validate_key(api_cache_key(code))
    cached = _counted_and_read(environ, key)
    if cached is None:
        cached = json.dumps(
            lookup_api_body(cached_form(_rows(code))), ensure_ascii=False, separators=(",", ":")
        ).encode()
        _redis.set(key, cached, ex=settings.LOOKUP_CACHE_SECONDS)
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(cached)))]
    )
    return [cached]


def _counted_and_read(environ: dict[str, Any], key: str) -> bytes | None:
    """The client's lookup counted and the cached answer read, in one round trip."""
    window = int(time.time() // _PERIOD)
    counter = _CACHE.make_and_validate_key(f"rl:lookup:{environ.get('REMOTE_ADDR')}:{window}")
    pipe = _redis.pipeline(transaction=False)
    pipe.incr(counter)
    pipe.expire(counter, _PERIOD + 1, nx=True)
    pipe.get(key)
    _count, _, cached = pipe.execute()
    return cached  # type: ignore[no-any-return]


def _rows(code: str) -> list[Any]:
    return _database().execute(_LOOKUP_SQL, [code, HISTORY_PERIODS, code], prepare=True).fetchall()


def _page(environ: dict[str, Any], start_response: Any, code: str) -> list[bytes]:
    key = _CACHE.make_and_validate_key(bills_cache_key(code))
    cached = _counted_and_read(environ, key)
    if cached is None:
        data = cached_form(_rows(code))
        _redis.set(key, json.dumps(data, separators=(",", ":")), ex=settings.LOOKUP_CACHE_SECONDS)
    else:
        data = json.loads(cached)
    translation.activate(settings.LANGUAGE_CODE)
    page = bills_page.bills_page(
        CustomerBills.from_cache(data), gateways=usable_gateways(), in_progress=None
    )
    request = HttpRequest()  # only to carry the new visitor's CSRF token
    body = bills_page.render(request, page).encode()
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    if "CSRF_COOKIE" in request.META:
        cookie: SimpleCookie = SimpleCookie()
        cookie[settings.CSRF_COOKIE_NAME] = request.META["CSRF_COOKIE"]
        cookie[settings.CSRF_COOKIE_NAME].update(
            {"max-age": settings.CSRF_COOKIE_AGE, "path": "/", "samesite": "Lax", "httponly": True}
        )
        headers.append(("Set-Cookie", cookie[settings.CSRF_COOKIE_NAME].output(header="")))
    start_response("200 OK", headers)
    return [body]
