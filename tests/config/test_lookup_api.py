"""The lookup API's plain WSGI function (config/lookups.py) against the Django path it
stands in for (the lean handler, CustomerBillsView): same statuses, bodies and headers."""

from __future__ import annotations

import io
import logging
import re
import time
from email.utils import parsedate_to_datetime
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.db import connection
from django.utils.http import http_date

from config import lookups, wsgi
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

# Values that depend on the clock or on chance: compared by presence, not value.
TIMED = {"Expires"}


def _environ(path: str, method: str = "GET", **extra: str) -> dict:
    path, _, query = path.partition("?")
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    environ["wsgi.input"] = io.BytesIO()
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost"
    environ.update(extra)
    return environ


def _run(app, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:  # type: ignore[no-untyped-def]
    answer: dict = {}

    def start_response(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
        answer.update(status=status, headers=headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return answer["status"], answer["headers"], body


def _comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        if name in TIMED:
            value = "<time>"
        elif name == "Set-Cookie":
            # A cookie's expiry is the time of the answer plus its age: the two answers
            # compared may fall in different seconds.
            value = re.sub(r"expires=[^;]+", "expires=<time>", value)
            if value.strip().startswith("csrftoken="):
                value = "csrftoken=<random>" + value[value.index(";") :]
        out.append((name, value))
    return out


def _both(environ: dict, *, before=None) -> tuple:  # type: ignore[no-untyped-def]
    """The same request through the lean handler (CustomerBillsView) and the WSGI function,
    the cache and the rate limit as they were before each."""
    from django.core.cache import cache

    answers = []
    for app in (wsgi._lookups, wsgi.application):
        cache.clear()
        if before:
            before()
        answers.append(_run(app, dict(environ, **{"wsgi.input": io.BytesIO()})))
    return answers


def _assert_same(environ: dict, *, before=None) -> tuple[str, list, bytes]:  # type: ignore[no-untyped-def]
    (old_status, old_headers, old_body), (status, headers, body) = _both(environ, before=before)
    assert status == old_status
    assert body == old_body
    assert _comparable(headers) == _comparable(old_headers)
    return status, headers, body


CASES = {
    "200": "/api/v1/customers/{code}/bills/",
    "200 typed loosely": "/api/v1/customers/{loose}/bills/",
    "400": "/api/v1/customers/nonsense/bills/",
    "404": "/api/v1/customers/PA14HT9999999/bills/",
    "200 in English": "/api/v1/customers/{code}/bills/?lang=en",
    "400 in English": "/api/v1/customers/nonsense/bills/?lang=en",
    "404 in English": "/api/v1/customers/PA14HT9999999/bills/?lang=fr&lang=en",
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_wsgi_function_answers_as_the_view_does(case, in_test_transaction):
    customer, _bills = customer_with_bills(unpaid=2)
    loose = f"{customer.code[:4].lower()} {customer.code[4:]}"
    path = CASES[case].format(code=customer.code, loose=loose)
    environ = _environ(path)
    assert lookups.lookup_in(environ) is not None  # the function, not the handler, answers
    status, headers, body = _assert_same(environ)
    assert status.startswith(case[:3])
    assert ("Content-Language", "en" if "English" in case else "vi") in headers


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "HEAD"])
def test_other_methods_and_head_answer_alike(method, in_test_transaction):
    customer, _bills = customer_with_bills()
    status, headers, _body = _assert_same(
        _environ(f"/api/v1/customers/{customer.code}/bills/", method)
    )
    if method == "HEAD":
        assert status.startswith("200")
    else:
        assert status.startswith("405") and ("Allow", "GET, HEAD") in headers


def test_a_spent_budget_is_a_429_alike(in_test_transaction, settings):
    settings.LOOKUP_RATE_LIMIT = "1/m"
    customer, _bills = customer_with_bills()
    environ = _environ(f"/api/v1/customers/{customer.code}/bills/")

    def spend() -> None:
        _run(wsgi.application, dict(environ, **{"wsgi.input": io.BytesIO()}))

    status, headers, _body = _assert_same(environ, before=spend)
    assert status.startswith("429") and dict(headers)["Retry-After"]


@pytest.mark.parametrize(
    "extra",
    [
        {"HTTP_COOKIE": "django_language=en"},
        {"HTTP_COOKIE": "csrftoken=not-a-token"},  # replaced, as on every lean page
        {"HTTP_HOST": "evil.example"},  # refused by ALLOWED_HOSTS
        {"HTTP_X_FORWARDED_PROTO": "https", "wsgi.url_scheme": "https"},
    ],
    ids=["language cookie", "bad csrf cookie", "bad host", "https"],
)
def test_the_unusual_requests_answer_alike(extra, in_test_transaction):
    customer, _bills = customer_with_bills()
    _assert_same(_environ(f"/api/v1/customers/{customer.code}/bills/", **extra))


def test_an_error_in_the_lookup_is_django_s_logged_500(in_test_transaction, monkeypatch, caplog):
    customer, _bills = customer_with_bills()

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database fell over")

    monkeypatch.setattr("customers.selectors.lookup_api_answer", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        status, headers, body = _assert_same(_environ(f"/api/v1/customers/{customer.code}/bills/"))
    assert status.startswith("500")
    assert b'"server_error"' in body
    assert "Content-Security-Policy" in dict(headers)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(errors) == 2  # one per path, with the traceback


def test_4xx_answers_are_logged_as_django_logs_them(in_test_transaction, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        _run(wsgi.application, _environ("/api/v1/customers/PA14HT9999999/bills/"))
    assert [r.getMessage() for r in caplog.records if r.name == "django.request"] == [
        "Not Found: /api/v1/customers/PA14HT9999999/bills/"
    ]


def test_other_api_paths_still_go_to_the_handler():
    for path in ("/api/v1/customers/PA14HT0012345/", "/api/v1/customers/a/bills/x/"):
        assert lookups.lookup_in(_environ(path)) is None


@pytest.mark.django_db(transaction=True)
def test_the_connection_is_closed_at_the_end_of_each_request_when_not_kept():
    """CONN_MAX_AGE=0: request_finished closes the thread's connection, as Django does."""
    customer, _bills = customer_with_bills()
    age = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    connection.close()  # the next one is opened under the new age
    try:
        for _ in range(3):
            status, _h, _b = _run(
                wsgi.application, _environ(f"/api/v1/customers/{customer.code}/bills/")
            )
            assert status.startswith("200")
            assert connection.connection is None  # closed, not left open for the next one
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = age
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_is_reused_not_leaked(monkeypatch):
    """CONN_MAX_AGE>0: one connection serves the requests one after the other."""
    customer, _bills = customer_with_bills()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        (before,) = cursor.fetchone()
    first = None
    for _ in range(5):
        _run(wsgi.application, _environ(f"/api/v1/customers/{customer.code}/bills/"))
        first = first or connection.connection
        assert connection.connection is first
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        (after,) = cursor.fetchone()
    assert after == before


def test_the_function_answers_with_the_lookup_handlers_middleware():
    """The function calls the lean handler's layers itself: a layer added to the handler must
    be added there."""
    from django.utils.module_loading import import_string

    handler = [import_string(path) for path in wsgi.LOOKUP_MIDDLEWARE]
    assert handler == list(lookups.STANDS_FOR)


@pytest.mark.parametrize(
    "extra",
    [{}, {"HTTP_COOKIE": "django_language=en"}, {"wsgi.url_scheme": "https"}],
    ids=["plain", "in English", "https"],
)
def test_a_found_customer_s_answer_keeps_its_kind_s_headers(extra, in_test_transaction, settings):
    """The first 200 of a kind of request goes through the layers, the next ones are sent with
    the headers kept from it: both as the handler answers them."""
    settings.LOOKUP_CACHE_SECONDS = 61
    assert not lookups._headers_of  # a changed setting forgets the headers kept
    customer, _bills = customer_with_bills(unpaid=1)
    environ = _environ(f"/api/v1/customers/{customer.code}/bills/", **extra)
    first = _assert_same(environ)
    assert len(lookups._headers_of) == 1
    second = _assert_same(environ)
    assert _comparable(second[1]) == _comparable(first[1])


@pytest.mark.parametrize("path", ["/api/v1/customers/{code}/bills/", "/bills/{code}/"])
def test_a_kept_answer_expires_as_django_writes_it(path, in_test_transaction, monkeypatch):
    """Never cached: Expires is the time of the answer (add_never_cache_headers), whether the
    answer went through the layers (the first of its kind) or was sent with kept headers, and
    the kept answers' date moves on with each second."""
    monkeypatch.setattr(lookups, "_headers_of", {})
    customer, _bills = customer_with_bills()
    environ = _environ(path.format(code=customer.code))

    def expires() -> str:
        _status, headers, _body = _run(
            wsgi.application, dict(environ, **{"wsgi.input": io.BytesIO()})
        )
        return dict(headers)["Expires"]

    before = int(time.time())
    first = int(parsedate_to_datetime(expires()).timestamp())
    assert before <= first <= int(time.time())
    assert len(lookups._headers_of) == 1  # the next answers are sent with kept headers

    class Clock:
        now = 2_000_000_000.2

        @classmethod
        def time(cls) -> float:
            return cls.now

    monkeypatch.setattr(lookups, "time", Clock)
    for now in (2_000_000_000.2, 2_000_000_000.9, 2_000_000_001.1, 2_000_000_001.9999996):
        Clock.now = now
        assert expires() == http_date(now)


def test_the_headers_kept_are_not_those_of_another_kind(in_test_transaction):
    customer, _bills = customer_with_bills()
    path = f"/api/v1/customers/{customer.code}/bills/"
    in_vietnamese = _assert_same(_environ(path))
    in_english = _assert_same(_environ(path, HTTP_COOKIE="django_language=en"))
    again = _assert_same(_environ(path))
    assert dict(in_vietnamese[1])["Content-Language"] == "vi"
    assert dict(in_english[1])["Content-Language"] == "en"
    assert dict(again[1])["Content-Language"] == "vi"


def test_a_request_the_layers_do_more_for_is_answered_through_them(in_test_transaction):
    """A language chosen now sets a cookie, a bad CSRF cookie is replaced: never from the
    headers kept for a plain request of the same language."""
    customer, _bills = customer_with_bills()
    path = f"/api/v1/customers/{customer.code}/bills/"
    _assert_same(_environ(path))
    _assert_same(_environ(path))  # the plain kind's headers are kept now
    chosen = _assert_same(_environ(path + "?lang=vi"))
    replaced = _assert_same(_environ(path, HTTP_COOKIE="csrftoken=not-a-token"))
    assert any(name == "Set-Cookie" and "django_language=vi" in v for name, v in chosen[1])
    assert any(name == "Set-Cookie" and "csrftoken=" in v for name, v in replaced[1])


def test_the_headers_kept_for_https_are_not_sent_over_http(in_test_transaction, monkeypatch):
    """HSTS is the header an answer over HTTPS has and one over HTTP has not (the tests' settings
    send none, so the layers' SecurityMiddleware is told to here)."""
    monkeypatch.setattr(lookups._security, "sts_seconds", 3600)
    monkeypatch.setattr(lookups, "_headers_of", {})
    customer, _bills = customer_with_bills()
    path = f"/api/v1/customers/{customer.code}/bills/"
    https = {"wsgi.url_scheme": "https"}
    answers = [
        dict(_run(wsgi.application, _environ(path, **extra))[1]) for extra in (https, {}, https, {})
    ]
    assert len(lookups._headers_of) == 2  # the two later answers sent from kept headers
    assert ["Strict-Transport-Security" in headers for headers in answers] == [
        True,
        False,
        True,
        False,
    ]


@pytest.mark.parametrize(
    "extra",
    [
        {"QUERY_STRING": "&" * 1001},  # too many query fields: Django's 400
        {"HTTP_HOST": "evil.example", "HTTP_COOKIE": "django_language=en"},
    ],
    ids=["too many fields", "bad host"],
)
def test_what_the_first_look_raises_is_answered_as_django_does(extra, in_test_transaction):
    customer, _bills = customer_with_bills()
    status, _headers, _body = _assert_same(
        _environ(f"/api/v1/customers/{customer.code}/bills/", **extra)
    )
    assert status.startswith("400")
