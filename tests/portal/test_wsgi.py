"""The WSGI entry point: bank callbacks through a lean handler, everything else the whole stack."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings

from portal import wsgi

pytestmark = pytest.mark.django_db


def _call(path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = settings.ALLOWED_HOSTS[0] if settings.ALLOWED_HOSTS else "localhost"
    answer: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):  # type: ignore[no-untyped-def]
        answer.update(status=status, headers=dict(headers))

    body = b"".join(wsgi.application(environ, start_response))
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
