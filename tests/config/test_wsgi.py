"""The WSGI entry point: bank callbacks and the public lookups through lean handlers, everything
else (payment pages, console, admin) the whole stack."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.contrib.messages import constants
from django.contrib.messages.storage.cookie import CookieStorage
from django.core import signals
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse

from config import wsgi
from tests.factories import CustomerFactory, customer_with_bills

pytestmark = pytest.mark.django_db


def _call(
    path: str, method: str = "GET", *, cookie: str = "", body: bytes = b"", form: bool = False
) -> tuple[str, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    if form:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    environ["HTTP_HOST"] = settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost"
    answer: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):  # type: ignore[no-untyped-def]
        cookies = [value.strip() for name, value in headers if name == "Set-Cookie"]
        answer.update(status=status, headers=dict(headers) | {"cookies": cookies})

    # As Django's test client does: the test's transaction must outlive the request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(wsgi.application(environ, start_response))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], body


def _chain(handler) -> list[str]:  # type: ignore[no-untyped-def]
    """The middleware classes a handler runs, outermost first (Django wraps each one in a
    function that turns exceptions into responses)."""
    names, layer = [], handler._middleware_chain
    while True:
        layer = getattr(layer, "__wrapped__", layer)
        if not hasattr(layer, "get_response"):
            return names
        names.append(f"{type(layer).__module__}.{type(layer).__name__}")
        layer = layer.get_response


def test_callbacks_get_only_the_middleware_they_need():
    chain = _chain(wsgi._callbacks)
    assert chain == wsgi.CALLBACK_MIDDLEWARE
    assert not any("session" in name.lower() or "axes" in name for name in chain)


def test_pages_console_and_admin_keep_the_whole_stack():
    chain = _chain(wsgi._pages)
    assert chain == list(settings.MIDDLEWARE)
    assert settings.MIDDLEWARE != wsgi.CALLBACK_MIDDLEWARE  # the swap was given back


def test_a_callback_is_answered_by_the_lean_handler_with_its_security_headers():
    status, headers, body = _call("/callbacks/transfers/")
    assert status.startswith("405")
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    assert "Content-Security-Policy" in headers
    assert "Set-Cookie" not in headers


def test_a_page_goes_through_the_whole_stack():
    status, headers, _body = _call("/")
    assert status.startswith("200")
    assert headers.get("X-Frame-Options") == "DENY"  # the clickjacking middleware ran


SKIPPED = ("SessionMiddleware", "AuthenticationMiddleware", "AxesMiddleware")


def test_the_public_lookups_skip_sessions_users_and_the_lockout():
    chain = _chain(wsgi._lookups)
    assert chain == wsgi.LOOKUP_MIDDLEWARE
    assert not any(name.endswith(SKIPPED) for name in chain)
    assert wsgi.handler_for("/bills/PA14HT0000001/") is wsgi._lookups
    assert wsgi.handler_for("/api/v1/customers/PA14HT0000001/bills/") is wsgi._lookups
    for path in ("/", "/pay/start/", "/console/", "/admin/", "/api/v1/payments/"):
        assert wsgi.handler_for(path) is wsgi._pages


def test_the_console_and_admin_still_get_sign_in_and_sessions():
    status, headers, _body = _call("/console/")
    assert status.startswith("302") and "/login" in headers["Location"]  # the user was read
    status, headers, _body = _call("/admin/login/")
    assert status.startswith("200")
    assert headers.get("X-Frame-Options") == "DENY"
    assert any(cookie.startswith("csrftoken=") for cookie in headers["cookies"])


def test_a_lookup_answers_with_its_headers_and_sets_no_cookie():
    customer, _bills = customer_with_bills(unpaid=1)
    status, headers, body = _call(f"/api/v1/customers/{customer.code}/bills/")
    assert status.startswith("200")
    assert json.loads(body)["customer"]["code"] == customer.code
    assert headers["cookies"] == []
    assert "no-cache" in headers["Cache-Control"]
    assert "Content-Security-Policy" in headers and headers.get("X-Frame-Options") == "DENY"
    status, headers, body = _call(f"/bills/{customer.code}/")
    assert status.startswith("200") and customer.code.encode() in body
    assert headers["Content-Language"] == "vi"
    # The form on the page that starts a payment carries its CSRF token, in the cookie too.
    assert any(cookie.startswith("csrftoken=") for cookie in headers["cookies"])
    assert not any(cookie.startswith("sessionid=") for cookie in headers["cookies"])


def test_a_refused_payment_start_is_shown_on_the_lean_bills_page():
    """The start goes through the whole stack, the bills page through the lean one: the flash
    message a refused start leaves crosses in its cookie (test_lookup_pages has the start)."""
    customer = CustomerFactory()
    request = HttpRequest()
    storage = CookieStorage(request)
    storage.add(constants.ERROR, "Vui lòng chọn cách thanh toán.")
    response = HttpResponse()
    storage.update(response)
    morsel = response.cookies[storage.cookie_name]
    status, _headers, body = _call(
        f"/bills/{customer.code}/", cookie=f"{storage.cookie_name}={morsel.coded_value}"
    )
    assert status.startswith("200")
    assert "Vui lòng chọn cách thanh toán." in body.decode()
