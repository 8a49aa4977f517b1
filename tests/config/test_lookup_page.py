"""The bills page's plain WSGI function (config/lookups.py) against the lean handler it stands in
for: same statuses, bodies and headers, the first page of a kind and the next ones."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory

from config import lookups, wsgi
from tests.config.test_lookup_api import _comparable, _environ, _run
from tests.portal.demo import household_with_history

pytestmark = pytest.mark.django_db

_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


def _same_page(body: bytes) -> bytes:
    """The page, its CSRF token aside: each answer masks it anew."""
    return _TOKEN.sub(b'name="csrfmiddlewaretoken" value="<token>"', body)


def _both(environ: dict) -> list[tuple[str, list, bytes]]:
    from django.core.cache import cache

    answers = []
    for app in (wsgi._lookups, wsgi.application):
        cache.clear()
        answers.append(_run(app, dict(environ, **{"wsgi.input": io.BytesIO()})))
    return answers


def _assert_same(environ: dict) -> tuple[str, list, bytes]:
    (old_status, old_headers, old_body), (status, headers, body) = _both(environ)
    assert status == old_status
    assert _same_page(body) == _same_page(old_body)
    assert _comparable(headers) == _comparable(old_headers)
    return status, headers, body


@pytest.fixture(autouse=True)
def _nothing_kept(monkeypatch):
    """Each test starts with no headers or skeletons kept: its first page is the first."""
    from portal.views.bills_page import skeletons

    monkeypatch.setattr(lookups, "_headers_of", {})
    monkeypatch.setattr(skeletons, "kept", {})


@pytest.fixture
def owing():
    return household_with_history(unpaid=2)


CASES = {
    "200 with the form": ("/bills/{code}/", {}),
    "200 in English": ("/bills/{code}/", {"HTTP_COOKIE": "django_language=en"}),
    "200 English chosen now": ("/bills/{code}/?lang=en", {}),
    "200 with a query": ("/bills/{code}/?utm=sms", {}),
    "200 over HTTPS": ("/bills/{code}/", {"wsgi.url_scheme": "https"}),
    "200 returning visitor": ("/bills/{code}/", {"HTTP_COOKIE": "csrftoken=" + "a" * 32}),
    "200 bad csrf cookie": ("/bills/{code}/", {"HTTP_COOKIE": "csrftoken=not-a-token"}),
    "302 typed loosely": ("/bills/{loose}/", {}),
    "400 not a code": ("/bills/nonsense/", {}),
    "404 unknown": ("/bills/PA14HT9999999/", {}),
    "400 bad host": ("/bills/{code}/", {"HTTP_HOST": "evil.example"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_page_answers_as_the_handler_does_first_and_then(case, owing, in_test_transaction):
    path, extra = CASES[case]
    code = owing.customer.code
    environ = _environ(path.format(code=code, loose=code.lower()), **extra)
    assert lookups.lookup_in(environ) is not None  # the function, not the handler, answers
    first = _assert_same(environ)
    again = _assert_same(environ)  # from the headers kept, where the first one kept them
    assert first[0] == again[0] and first[0].startswith(case[:3])
    assert _comparable(first[1]) == _comparable(again[1])


def test_a_returning_visitor_keeps_their_own_secret(owing, in_test_transaction):
    secret = "a" * 32
    path = f"/bills/{owing.customer.code}/"
    for _ in range(2):  # through the layers, then from the headers kept
        _status, headers, _body = _run(
            wsgi.application, _environ(path, HTTP_COOKIE=f"csrftoken={secret}")
        )
        cookies = [value for name, value in headers if name == "Set-Cookie"]
        assert [cookie.strip().split(";")[0] for cookie in cookies] == [f"csrftoken={secret}"]
    assert lookups._headers_of


def test_a_page_without_a_form_sets_no_cookie_either_way(in_test_transaction):
    paid_up = household_with_history(unpaid=0)
    for _ in range(2):
        status, headers, body = _assert_same(_environ(f"/bills/{paid_up.customer.code}/"))
        assert status.startswith("200") and b"<form" not in body
        assert not [value for name, value in headers if name == "Set-Cookie"]


def test_the_pages_kinds_keep_their_own_headers(owing, in_test_transaction, settings):
    settings.LOOKUP_CACHE_SECONDS = 61
    assert not lookups._headers_of  # a changed setting forgets the headers kept
    path = f"/bills/{owing.customer.code}/"
    kinds = [{}, {"HTTP_COOKIE": "django_language=en"}, {"HTTP_COOKIE": "csrftoken=" + "a" * 32}]
    for extra in kinds * 2:
        _assert_same(_environ(path, **extra))
    # A returning visitor's page sets the cookie again, as Django does (get_token asks for it):
    # the same kind as a new visitor's.
    assert set(lookups._headers_of) == {("page", False, "vi", True), ("page", False, "en", True)}
    answers = [_run(wsgi.application, _environ(path, **extra)) for extra in kinds]
    assert [dict(headers)["Content-Language"] for _s, headers, _b in answers] == ["vi", "en", "vi"]


def test_each_new_visitor_gets_a_cookie_of_their_own_and_a_token_that_matches(
    owing, in_test_transaction
):
    from django.middleware.csrf import _unmask_cipher_token

    path = f"/bills/{owing.customer.code}/"
    secrets = set()
    for _ in range(3):
        _status, headers, body = _run(wsgi.application, _environ(path))
        cookie = next(value for name, value in headers if name == "Set-Cookie")
        secret = cookie.strip().split(";")[0].split("=", 1)[1]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        assert token and _unmask_cipher_token(token[1].decode()) == secret
        secrets.add(secret)
    assert len(secrets) == 3


def _flash_cookie(text: str) -> str:
    request = RequestFactory().get("/")
    storage = CookieStorage(request)
    from django.http import HttpResponse

    response = HttpResponse()
    storage._store([Message(constants.WARNING, text)], response)
    return response.cookies[storage.cookie_name].output(header="").strip().split(";")[0]


def test_a_flash_message_is_shown_once_and_cleared_as_the_handler_does(owing, in_test_transaction):
    path = f"/bills/{owing.customer.code}/"
    _assert_same(_environ(path))  # the plain page's headers are kept
    _status, headers, body = _assert_same(
        _environ(path, HTTP_COOKIE=_flash_cookie("Khoản thanh toán không bắt đầu được."))
    )
    assert "Khoản thanh toán không bắt đầu được." in body.decode()
    assert any(
        name == "Set-Cookie" and value.strip().startswith("messages=") for name, value in headers
    )


@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_other_methods_answer_alike(method, owing, in_test_transaction):
    status, _headers, _body = _assert_same(_environ(f"/bills/{owing.customer.code}/", method))
    # A POST without the visitor's CSRF token is refused before the view, as everywhere.
    assert status.startswith("200" if method == "HEAD" else "403")


def test_a_spent_budget_is_a_429_alike(owing, in_test_transaction, settings):
    settings.LOOKUP_RATE_LIMIT = "1/m"
    from django.core.cache import cache

    environ = _environ(f"/bills/{owing.customer.code}/")
    answers = []
    for app in (wsgi._lookups, wsgi.application):
        cache.clear()
        _run(app, dict(environ, **{"wsgi.input": io.BytesIO()}))
        answers.append(_run(app, dict(environ, **{"wsgi.input": io.BytesIO()})))
    (old_status, old_headers, old_body), (status, headers, body) = answers
    assert status == old_status and status.startswith("429")
    assert body == old_body and _comparable(headers) == _comparable(old_headers)


@pytest.mark.parametrize("query", ["", "?utm=sms"], ids=["quick", "through the layers"])
def test_an_error_in_the_page_is_django_s_500_alike(query, owing, in_test_transaction, monkeypatch):
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the database fell over")

    monkeypatch.setattr("portal.views.bills_page.bills_page", broken)
    status, headers, _body = _assert_same(_environ(f"/bills/{owing.customer.code}/{query}"))
    assert status.startswith("500")
    assert {"Content-Security-Policy", "X-Frame-Options"} <= set(dict(headers))


def test_other_paths_under_bills_still_go_to_the_handler():
    for path in ("/bills/", "/bills/PA14HT0012345/x/", "/bills/PA14HT0012345"):
        assert lookups.lookup_in(_environ(path)) is None


@pytest.mark.parametrize(
    "path",
    ["/bills/PA14HT00%0012345/", "/bills/%F0%9F%92%A9/", "/bills/" + "P" * 3000 + "/"],
    ids=["NUL", "emoji", "too long"],
)
def test_hostile_codes_get_the_handler_s_400_never_a_500(path, in_test_transaction):
    environ = _environ(path)
    assert lookups.lookup_in(environ) is not None
    status, _headers, _body = _assert_same(environ)
    assert status.startswith("400")
