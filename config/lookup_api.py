"""`GET /api/v1/customers/{code}/bills/` as a plain WSGI function, ahead of any Django handler.

The lookup API is the portal's busiest endpoint, and Django's handler around it (the middleware
chain, URL resolution, the view's class machinery) cost more CPU than the lookup's own Redis
round trip and query (measured). This answers it with the same middleware as the lean handler
(config/wsgi.py's LOOKUP_MIDDLEWARE), called in the same order and with the same exception
handling, but layer by layer instead of through the chain, and without the URL resolver or the
view class; the answer itself is `customers.api.answer.bills_answer`, the rule the
URLconf's CustomerBillsView also answers with. A found customer's answer is not even built
through the layers each time: the headers they gave the first 200 of its kind are kept (see
`_answer`). tests/config/test_lookup_api.py holds the two paths to the same statuses, bodies
and headers.

MessageMiddleware is the one layer left out: it writes only messages that a view added or
read, and this answer does neither.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest, get_path_info, get_script_name
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import set_script_prefix, set_urlconf
from django.utils import translation
from django.utils.http import http_date
from django.utils.log import log_response

from common.middleware import (
    ContentSecurityPolicyMiddleware,
    DefaultLanguageMiddleware,
    _policy,
    choose_language,
    mark_language,
)
from common.ratelimit import client_address_in
from customers.api.answer import as_response, bills_answer, bills_response

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
# What the innermost layer answers with: (request, code, language) -> the answer.
View = Callable[[HttpRequest, str, str], HttpResponseBase]


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
    return bills_response(
        method=request.method or "",
        code=code,
        client=client_address_in(request.META),
        language=language,
    )


@_converting
def _xframe_layer(request: HttpRequest, code: str, language: str, view: View) -> HttpResponseBase:
    response = view(request, code, language)
    return _xframe.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _csrf_layer(request: HttpRequest, code: str, language: str, view: View) -> HttpResponseBase:
    # A malformed CSRF cookie is replaced here, as on every lean page.
    _csrf.process_request(request)
    response = _xframe_layer(request, code, language, view)
    return _csrf.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _common_layer(request: HttpRequest, code: str, language: str, view: View) -> HttpResponseBase:
    # Refuses a Host outside ALLOWED_HOSTS (400) and a disallowed user agent (403).
    response = _common.process_request(request) or _csrf_layer(request, code, language, view)
    return _common.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _language_layer(request: HttpRequest, code: str, view: View) -> HttpResponseBase:
    language, chosen = choose_language(request)
    translation.activate(language)
    request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    response = _common_layer(request, code, language, view)
    mark_language(response, language, chosen)  # type: ignore[arg-type]
    return response


@_converting
def _csp_layer(request: HttpRequest, code: str, view: View) -> HttpResponseBase:
    response = _language_layer(request, code, view)
    response.headers.setdefault("Content-Security-Policy", _policy())
    return response


@_converting
def _security_layer(request: HttpRequest, code: str, view: View = _view) -> HttpResponseBase:
    # The HTTPS redirect (SECURE_SSL_REDIRECT) comes before anything else, as on every page.
    response = _security.process_request(request) or _csp_layer(request, code, view)
    return _security.process_response(request, response)  # type: ignore[arg-type]


# --- A found customer's answer, without building it through the layers each time ---------------
# The layers cost the lookup more than its query (measured), and for a 200 they add the same
# headers to every answer of the same kind of request: the kind is whether it came over HTTPS
# (HSTS) and its language (Content-Language); a request that makes the layers do more (a
# redirect to HTTPS, a refused host or user agent, a CSRF cookie to replace, a language chosen
# now, which sets a cookie) or an answer that is not a 200 goes through them. So the first 200
# of a kind is answered through the layers, and its headers are kept, as a list in the layers'
# order with two places left to fill: Expires (the time of the answer, never cached) and
# Content-Length.
_TIMED = ("Expires", "Content-Length")
_Kind = tuple[bool, str]
_headers_of: dict[_Kind, tuple[list[tuple[str, str]], int, int]] = {}


def _forget_headers(**kwargs: Any) -> None:
    _headers_of.clear()


setting_changed.connect(_forget_headers)


def _quick_language(request: HttpRequest) -> str | None:
    """The request's language, when the layers would do nothing on this request but add their
    usual headers to a 200; None when they would do more, or when looking raised (a refused
    host, too many query fields): the layers then answer it, as Django does."""
    try:
        if _security.process_request(request) is not None:
            return None
        if _common.process_request(request) is not None:
            return None
        _csrf.process_request(request)
        if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
            return None
        language, chosen = choose_language(request)
    except Exception:  # noqa: BLE001 - answered through the layers, which convert it
        return None
    return language if chosen is None else None


def _answer(
    environ: dict[str, Any], request: HttpRequest, code: str
) -> HttpResponseBase | tuple[list[tuple[str, str]], bytes]:
    """The answer through the layers, or a 200's headers and body without them."""
    language = _quick_language(request) if request.method == "GET" else None
    if language is None:
        return _layers(environ, request, code)
    try:
        answer = bills_answer(
            method="GET", code=code, client=client_address_in(request.META), language=language
        )
    except Exception as exc:  # noqa: BLE001 - answered as Django answers it, through the layers
        _as_django_does(environ, language)
        error = response_for_exception(request, exc)
        return _layers(environ, request, code, lambda *args: error)
    if not isinstance(answer, bytes):
        return _layers(environ, request, code, lambda *args: as_response(answer))
    kind = (request.is_secure(), language)
    known = _headers_of.get(kind)
    if known is None:
        response = _layers(environ, request, code, lambda *args: as_response(answer))
        headers = _headers(response)
        names = [name for name, _value in headers]
        if response.status_code == 200 and not response.cookies and set(_TIMED) <= set(names):
            _headers_of[kind] = (headers, names.index("Expires"), names.index("Content-Length"))
        return response
    headers, expires, length = known
    headers = headers.copy()
    headers[expires] = ("Expires", http_date(time.time()))
    headers[length] = ("Content-Length", str(len(answer)))
    return headers, answer


def _layers(
    environ: dict[str, Any], request: HttpRequest, code: str, view: View = _view
) -> HttpResponseBase:
    _as_django_does(environ)
    return _security_layer(request, code, view)


def _as_django_does(environ: dict[str, Any], language: str | None = None) -> None:
    """The thread's state Django's handler sets for each request (where the portal is mounted,
    the URLconf) and the language layer activates, for an answer that may reverse a URL or
    translate a text. A found customer's answer does neither, and is sent without them."""
    set_script_prefix(get_script_name(environ))
    set_urlconf(settings.ROOT_URLCONF)
    if language is not None:
        translation.activate(language)


def code_in(environ: dict[str, Any]) -> str | None:
    """The code in a lookup API path, decoded as Django decodes a path; None for another path."""
    match = _PATH.match(get_path_info(environ))
    return match[1] if match else None


def serve(environ: dict[str, Any], start_response: Any, code: str) -> Any:
    """What Django's WSGIHandler and get_response do around the chain, but for one URL: the
    request signals (close_old_connections honours CONN_MAX_AGE at both ends; the answer's
    close(), which the server calls, sends request_finished), the thread's state for the
    layers (`_as_django_does`), the 4xx/5xx log line."""
    signals.request_started.send(sender=LookupApiHandler, environ=environ)
    request = WSGIRequest(environ)
    answer = _answer(environ, request, code)
    if isinstance(answer, tuple):
        headers, body = answer
        start_response("200 OK", headers)
        return _Body(body, request)
    response = answer
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


class _Body(list[bytes]):
    """A 200's body, closed as Django closes a response: the request's files, then
    request_finished, sent whatever closing the files raised."""

    def __init__(self, body: bytes, request: HttpRequest) -> None:
        super().__init__((body,))
        self.request = request

    def close(self) -> None:
        try:
            self.request.close()
        finally:
            signals.request_finished.send(sender=LookupApiHandler)


def _headers(response: HttpResponseBase) -> list[tuple[str, str]]:
    return [
        *response.items(),
        *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
    ]
