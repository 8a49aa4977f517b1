"""The public lookups as plain WSGI functions, ahead of any Django handler: every request for
`/api/v1/customers/{code}/bills/` and `/bills/{code}/`, whatever its method.

They are the portal's busiest answers, and Django's handler around them (the middleware chain,
URL resolution, the view's class machinery) cost more CPU than the API's own Redis round trip and
query (measured). These functions answer with the same middleware as the lean handler
(config/wsgi.py's LOOKUP_MIDDLEWARE), called in the same order and with the same exception
handling, but layer by layer instead of through the chain, and without the URL resolver; the
answers themselves are `customers.api.answer.bills_answer` (which the URLconf's
CustomerBillsView also answers with) and `portal.views.lookup.bills_answer` (which the bills
page's own view answers with).

A found customer's answer is not even sent through the layers each time: the headers they gave
the first 200 of its kind are kept (see `_answer`). tests/config/test_lookup_api.py and
test_lookup_page.py hold both paths to the same statuses, bodies and headers as the handler.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
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
from django.utils.cache import add_never_cache_headers
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
from customers.api.views import CustomerBillsView
from portal.views.lookup import bills as bills_page_view
from portal.views.lookup import bills_answer as bills_page_answer
from portal.views.lookup import bills_response as bills_page_response


class LookupHandler:
    """The sender of request_started and request_finished for these requests, as Django's
    handler class is for the others."""


def _never_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middleware's process_request/process_response are used")


# Built once, as Django builds its chain at start-up: they read their settings here.
_security = SecurityMiddleware(_never_called)
_common = CommonMiddleware(_never_called)
_csrf = CsrfViewMiddleware(_never_called)
_messages = MessageMiddleware(_never_called)
_xframe = XFrameOptionsMiddleware(_never_called)

# The lean handler's middleware these layers stand for, outermost first (a test holds this to
# LOOKUP_MIDDLEWARE, so that a middleware added there is not missed here).
STANDS_FOR = (
    SecurityMiddleware,
    ContentSecurityPolicyMiddleware,
    DefaultLanguageMiddleware,
    CommonMiddleware,
    CsrfViewMiddleware,
    MessageMiddleware,
    XFrameOptionsMiddleware,
)

Layer = Callable[..., HttpResponseBase]
# What the innermost layer answers with: (request, code, language) -> the answer.
View = Callable[[HttpRequest, str, str], HttpResponseBase]


@dataclass(frozen=True)
class Lookup:
    """One of the two lookups: its path, its view (for the layers) and the Django view it
    stands for (for the CSRF check), and its answer for the quick path: a found customer's body
    as bytes, or any other answer as a response; `as_response` makes either what the view
    returns (the cache headers included)."""

    name: str
    path: re.Pattern[str]
    view: View
    callback: Callable[..., Any]
    answer: Callable[[HttpRequest, str, str], bytes | HttpResponseBase]
    as_response: Callable[[Any], HttpResponseBase]
    # Whether a GET of this lookup may be answered on the quick path at all.
    quick: Callable[[HttpRequest], bool]


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
def _xframe_layer(
    request: HttpRequest, code: str, language: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    # The CSRF check of an unsafe method comes last, as Django makes it: before the view.
    response = _csrf.process_view(request, lookup.callback, (), {}) or view(request, code, language)
    return _xframe.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _messages_layer(
    request: HttpRequest, code: str, language: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    # A page answered before its layers (see `_answer`) read its messages already: the same
    # storage is kept, so that what it used is cleared.
    if not hasattr(request, "_messages"):
        _messages.process_request(request)
    response = _xframe_layer(request, code, language, lookup, view)
    return _messages.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _csrf_layer(
    request: HttpRequest, code: str, language: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    # A malformed CSRF cookie is replaced here, as on every lean page.
    _csrf.process_request(request)
    response = _messages_layer(request, code, language, lookup, view)
    return _csrf.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _common_layer(
    request: HttpRequest, code: str, language: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    # Refuses a Host outside ALLOWED_HOSTS (400) and a disallowed user agent (403).
    response = _common.process_request(request) or _csrf_layer(
        request, code, language, lookup, view
    )
    return _common.process_response(request, response)  # type: ignore[arg-type]


@_converting
def _language_layer(
    request: HttpRequest, code: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    language, chosen = choose_language(request)
    translation.activate(language)
    request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    response = _common_layer(request, code, language, lookup, view)
    mark_language(response, language, chosen)  # type: ignore[arg-type]
    return response


@_converting
def _csp_layer(request: HttpRequest, code: str, lookup: Lookup, view: View) -> HttpResponseBase:
    response = _language_layer(request, code, lookup, view)
    response.headers.setdefault("Content-Security-Policy", _policy())
    return response


@_converting
def _security_layer(
    request: HttpRequest, code: str, lookup: Lookup, view: View
) -> HttpResponseBase:
    # The HTTPS redirect (SECURE_SSL_REDIRECT) comes before anything else, as on every page.
    response = _security.process_request(request) or _csp_layer(request, code, lookup, view)
    return _security.process_response(request, response)  # type: ignore[arg-type]


# --- The two lookups -----------------------------------------------------------------------
# The views are converted too, as Django converts a view's exception before the innermost
# middleware sees the answer (X-Frame-Options is added to a 500 as well).
@_converting
def _api_view(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    return bills_response(
        method=request.method or "",
        code=code,
        client=client_address_in(request.META),
        language=language,
    )


def _api_answer(request: HttpRequest, code: str, language: str) -> bytes | HttpResponseBase:
    return bills_answer(
        method="GET", code=code, client=client_address_in(request.META), language=language
    )


@_converting
def _page_view(request: HttpRequest, code: str, language: str) -> HttpResponseBase:
    return bills_page_view(request, code)


def _page_answer(request: HttpRequest, code: str, language: str) -> bytes | HttpResponseBase:
    """The page's answer as its view makes it, given what the layers would give the request
    first: the thread's state for its URLs and text, its language, its flash messages'
    storage."""
    _as_django_does(request.environ, language)  # type: ignore[attr-defined]
    request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    _messages.process_request(request)
    return bills_page_answer(request, code)


def _page_response(answer: bytes | HttpResponseBase) -> HttpResponseBase:
    """The page's answer made whole as its view returns it, its never_cache's headers
    included."""
    response = bills_page_response(answer)  # type: ignore[arg-type]
    add_never_cache_headers(response)
    return response


def _quick_page(request: HttpRequest) -> bool:
    # A query string may choose a language or be kept by the page's language links.
    return not request.META.get("QUERY_STRING")


API = Lookup(
    name="api",
    # customers/api/urls.py's "<str:code>/bills/" under /api/v1/customers/: a code is anything
    # but a slash.
    path=re.compile(r"/api/v1/customers/([^/]+)/bills/\Z"),
    view=_api_view,
    callback=CustomerBillsView.as_view(),
    answer=_api_answer,
    as_response=as_response,
    quick=lambda request: True,
)
PAGE = Lookup(
    name="page",
    path=re.compile(r"/bills/([^/]+)/\Z"),  # portal/urls.py's "bills/<str:code>/"
    view=_page_view,
    callback=bills_page_view,
    answer=_page_answer,
    as_response=_page_response,
    quick=_quick_page,
)


# Where the two lookups' paths start (config/wsgi.py sends only these here, and the other paths
# under them to the lookups' lean handler).
PREFIXES = ("/api/v1/customers/", "/bills/")


def lookup_in(environ: dict[str, Any]) -> tuple[Lookup, str] | None:
    """The lookup a path asks for and its code, decoded as Django decodes a path; None for
    another path."""
    path = get_path_info(environ)
    for lookup in (API, PAGE):
        match = lookup.path.match(path)
        if match:
            return lookup, match[1]
    return None


# --- A found customer's answer, without building it through the layers each time ---------------
# The layers cost the lookup more than its query (measured), and for a 200 they add the same
# headers to every answer of the same kind of request: the kind is the lookup, whether it came
# over HTTPS (HSTS), its language (Content-Language), and whether the answer gives the visitor a
# CSRF cookie (the bills page holds a form; the cookie itself is each visitor's own, and is made
# by the CSRF layer's own method). A request that makes the layers do more (a redirect to HTTPS,
# a refused host or user agent, a CSRF cookie to replace, a language chosen now, which sets a
# cookie) or an answer that is not a 200 goes through them. So the first 200 of a kind is
# answered through the layers, and its headers are kept, as a list in the layers' order with two
# places left to fill: Expires (the time of the answer, never cached) and Content-Length.
_TIMED = ("Expires", "Content-Length")
_Kind = tuple[str, bool, str, bool]
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
    environ: dict[str, Any], request: HttpRequest, lookup: Lookup, code: str
) -> HttpResponseBase | tuple[list[tuple[str, str]], bytes]:
    """The answer through the layers, or a 200's headers and body without them."""
    quick = request.method == "GET" and lookup.quick(request)
    language = _quick_language(request) if quick else None
    if language is None:
        return _layers(environ, request, lookup, code)
    try:
        answer = lookup.answer(request, code, language)
    except Exception as exc:  # noqa: BLE001 - answered as Django answers it, through the layers
        _as_django_does(environ, language)
        error = response_for_exception(request, exc)
        return _layers(environ, request, lookup, code, lambda *args: error)
    # Flash messages shown or added: their storage's cookie is the messages layer's to update.
    storage = getattr(request, "_messages", None)
    if not isinstance(answer, bytes) or (
        storage is not None and (storage.used or storage.added_new)
    ):
        whole = lookup.as_response(answer)
        return _layers(environ, request, lookup, code, lambda *args: whole)
    body = answer
    token_cookie = bool(request.META.get("CSRF_COOKIE_NEEDS_UPDATE"))
    kind = (lookup.name, request.is_secure(), language, token_cookie)
    known = _headers_of.get(kind)
    if known is None:
        first = lookup.as_response(body)
        answered = _layers(environ, request, lookup, code, lambda *args: first)
        headers = [
            header for header in _headers(answered) if not _is_token_cookie(header, token_cookie)
        ]
        names = [name for name, _value in headers]
        if (
            answered.status_code == 200
            and set(answered.cookies) <= ({settings.CSRF_COOKIE_NAME} if token_cookie else set())
            and set(_TIMED) <= set(names)
        ):
            _headers_of[kind] = (headers, names.index("Expires"), names.index("Content-Length"))
        return answered
    headers, expires, length = known
    headers = headers.copy()
    headers[expires] = ("Expires", _expired())
    headers[length] = ("Content-Length", str(len(body)))
    if token_cookie:
        headers.append(("Set-Cookie", _token_cookie(request)))
    return headers, body


class _Expired:
    """The Expires of a never-cached answer as Django's add_never_cache_headers writes it (the
    time of the answer), formatted once a second rather than for each answer: formatting a date
    cost a found customer's answer about 3% of its CPU (measured under gunicorn)."""

    def __init__(self) -> None:
        self.kept: tuple[int, str] = (0, "")

    def __call__(self) -> str:
        # http_date rounds to the microsecond: 0.9999997 past a second is written as the next.
        second = int(time.time() + 0.5e-6)
        kept_second, text = self.kept
        if kept_second != second:
            # One tuple replaced at once: another thread reads the old one or the new one.
            text = http_date(second)
            self.kept = (second, text)
        return text


_expired = _Expired()


def _is_token_cookie(header: tuple[str, str], token_cookie: bool) -> bool:
    name, value = header
    return (
        token_cookie
        and name == "Set-Cookie"
        and value.lstrip().startswith(settings.CSRF_COOKIE_NAME + "=")
    )


def _token_cookie(request: HttpRequest) -> str:
    """The visitor's new CSRF cookie, as the CSRF layer sets it on the page (its own method,
    on a response made for it)."""
    carrier = HttpResponse()
    _csrf.process_response(request, carrier)
    return carrier.cookies[settings.CSRF_COOKIE_NAME].output(header="")


def _layers(
    environ: dict[str, Any],
    request: HttpRequest,
    lookup: Lookup,
    code: str,
    view: View | None = None,
) -> HttpResponseBase:
    _as_django_does(environ)
    return _security_layer(request, code, lookup, view or lookup.view)


def _as_django_does(environ: dict[str, Any], language: str | None = None) -> None:
    """The thread's state Django's handler sets for each request (where the portal is mounted,
    the URLconf) and the language layer activates, for an answer that may reverse a URL or
    translate a text. The API's found customer's answer does neither, and is sent without
    them."""
    set_script_prefix(get_script_name(environ))
    set_urlconf(settings.ROOT_URLCONF)
    if language is not None:
        translation.activate(language)


def serve(environ: dict[str, Any], start_response: Any, lookup: Lookup, code: str) -> Any:
    """What Django's WSGIHandler and get_response do around the chain, but for one URL: the
    request signals (close_old_connections honours CONN_MAX_AGE at both ends; the answer's
    close(), which the server calls, sends request_finished), the thread's state for the
    layers (`_as_django_does`), the 4xx/5xx log line."""
    signals.request_started.send(sender=LookupHandler, environ=environ)
    request = WSGIRequest(environ)
    answer = _answer(environ, request, lookup, code)
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
    response._handler_class = LookupHandler  # type: ignore[attr-defined]
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
            signals.request_finished.send(sender=LookupHandler)


def _headers(response: HttpResponseBase) -> list[tuple[str, str]]:
    return [
        *response.items(),
        *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
    ]
