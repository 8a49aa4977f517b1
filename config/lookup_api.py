"""`GET /api/v1/customers/{code}/bills/` as a plain WSGI function, ahead of any Django handler.

The lookup API is the portal's busiest endpoint, and Django's handler around it (the middleware
chain, URL resolution, the view's class machinery) cost more CPU than the lookup's own Redis
round trip and query (measured). This answers it with the same middleware as the lean handler
(config/wsgi.py's LOOKUP_MIDDLEWARE), called in the same order and with the same exception
handling, but layer by layer instead of through the chain, and without the URL resolver or the
view class; the answer itself is `customers.api.answer.bills_response`, the rule the
URLconf's CustomerBillsView also answers with. tests/config/test_lookup_api.py holds the two
paths to the same statuses, bodies and headers.

MessageMiddleware is the one layer left out: it writes only messages that a view added or
read, and this answer does neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest, get_path_info, get_script_name
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix, set_urlconf
from django.utils import translation
from django.utils.log import log_response

from common.middleware import (
    ContentSecurityPolicyMiddleware,
    DefaultLanguageMiddleware,
    _policy,
    choose_language,
    mark_language,
)
from common.ratelimit import client_address_in
from customers.api.answer import bills_response

PREFIX = "/api/v1/customers/"
# customers/api/urls.py's "<str:code>/bills/" under PREFIX: a code is anything but a slash.
_PATH = re.compile(r"/api/v1/customers/([^/]+)/bills/\Z")


class LookupApiHandler:
    """The sender of request_started and request_finished for these requests, as Django's
    handler class is for the others."""


def _never_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middleware's process_request/process_response are used")


# Built once, as Django builds its chain at start-up: they read their settings here.
_security = SecurityMiddleware(_never_called)
_common = CommonMiddleware(_never_called)
_csrf = CsrfViewMiddleware(_never_called)
_xframe = XFrameOptionsMiddleware(_never_called)

# The lean handler's middleware these layers stand for, outermost first (a test holds this to
# LOOKUP_MIDDLEWARE, so that a middleware added there is not missed here).
STANDS_FOR = (
    SecurityMiddleware,
    ContentSecurityPolicyMiddleware,
    DefaultLanguageMiddleware,
    CommonMiddleware,
    CsrfViewMiddleware,
    XFrameOptionsMiddleware,
)

Layer = Callable[..., HttpResponseBase]


def _converting(layer: Layer) -> Layer:
    """Django's convert_exception_to_response for a layer: what it raises becomes the answer
    Django gives (handler400/403/404/500 of the URLconf, logged), seen by the outer layers."""

    @wraps(layer)
    def inner(request: HttpRequest, *args: Any) -> HttpResponseBase:
        try:
            return layer(request, *args)
        except Exception as exc:  # noqa: BLE001 - answered as Django answers it
            return response_for_exception(request, exc)

    return inner


@_converting
def _view(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    response = bills_response(
        method=request.method or "",
        code=code,
        client=client_address_in(request.META),
        language=language,
    )
    return response


@_converting
def _xframe_layer(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    response = _view(request, code, language)
    return _xframe.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _csrf_layer(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    # A malformed CSRF cookie is replaced here, as on every lean page.
    _csrf.process_request(request)
    response = _xframe_layer(request, code, language)
    return _csrf.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _common_layer(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    # Refuses a Host outside ALLOWED_HOSTS (400) and a disallowed user agent (403).
    response = _common.process_request(request) or _csrf_layer(request, code, language)
    return _common.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _language_layer(request: HttpRequest, code: str) -> HttpResponseBase:
    language, chosen = choose_language(request)
    translation.activate(language)
    request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    response = _common_layer(request, code, language)
    mark_language(response, language, chosen)  # type: ignore[arg-type]
    return response


@_converting
def _csp_layer(request: HttpRequest, code: str) -> HttpResponseBase:
    response = _language_layer(request, code)
    response.headers.setdefault("Content-Security-Policy", _policy())
    return response


@_converting
def _security_layer(request: HttpRequest, code: str) -> HttpResponseBase:
    # The HTTPS redirect (SECURE_SSL_REDIRECT) comes before anything else, as on every page.
    response = _security.process_request(request) or _csp_layer(request, code)
    return _security.process_response(request, response)  # type: ignore[arg-type]


def code_in(environ: dict[str, Any]) -> str | None:
    """The code in a lookup API path, decoded as Django decodes a path; None for another path."""
    match = _PATH.match(get_path_info(environ))
    return match[1] if match else None


def serve(environ: dict[str, Any], start_response: Any, code: str) -> HttpResponseBase:
    """What Django's WSGIHandler and get_response do around the chain, but for one URL: the
    request signals (close_old_connections honours CONN_MAX_AGE at both ends; the response's
    close(), which the server calls, sends request_finished), the 4xx/5xx log line."""
    set_script_prefix(get_script_name(environ))
    signals.request_started.send(sender=LookupApiHandler, environ=environ)
    set_urlconf(settings.ROOT_URLCONF)
    request = WSGIRequest(environ)
    response = _security_layer(request, code)
    response._resource_closers.append(request.close)  # type: ignore[attr-defined]
    if response.status_code >= 400:
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,  # type: ignore[arg-type]
            request=request,
        )
    response._handler_class = LookupApiHandler  # type: ignore[attr-defined]
    start_response(f"{response.status_code} {response.reason_phrase}", _headers(response))
    return response


def _headers(response: HttpResponseBase) -> list[tuple[str, str]]:
    return [
        *response.items(),
        *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
    ]
