"""Request-wide behaviour: the page language and the Content-Security-Policy header."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

_SUPPORTED = {code for code, _name in settings.LANGUAGES}


class DefaultLanguageMiddleware:
    """Vietnamese unless the visitor chose otherwise.

    Households share phones and browsers set to English, so the browser's Accept-Language is not
    a choice the visitor made; the language switch (`?lang=en`, remembered in a cookie) is.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language, chosen = choose_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
        response = self.get_response(request)
        mark_language(response, language, chosen)
        return response


def choose_language(request: HttpRequest) -> tuple[str, str | None]:
    """The request's language, and the one the visitor chose by `?lang=` now (None if not).

    Also for config/lookups.py, which answers the lookup API without this middleware."""
    # Without a query string there is no choice to read (QueryDict costs the lookup API).
    chosen = request.GET.get("lang") if request.META.get("QUERY_STRING") else None
    if chosen in _SUPPORTED:
        return chosen, chosen  # type: ignore[return-value]
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    return (cookie if cookie in _SUPPORTED else settings.LANGUAGE_CODE), None


def mark_language(response: HttpResponse, language: str, chosen: str | None) -> None:
    """Remember a choice made now, and say which language the answer is in and that the
    cookie decides it."""
    if chosen is not None:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            chosen,
            max_age=365 * 24 * 3600,
            samesite="Lax",
            secure=not settings.DEBUG,
        )
    response.headers.setdefault("Content-Language", language)
    if "Vary" in response.headers:
        if "Cookie" not in response.headers["Vary"]:
            response.headers["Vary"] += ", Cookie"
    else:
        response.headers["Vary"] = "Cookie"


@cache
def _policy() -> str:
    # The redirect to a partner bank's payment page follows a form post, which browsers check
    # against form-action, so the partners' pay URLs are allowed there and nowhere else.
    origins = set()
    for credentials in settings.PARTNER_CREDENTIALS.values():
        pay_url = credentials.get("pay_url")
        if pay_url:
            parts = urlsplit(pay_url)
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return settings.CONTENT_SECURITY_POLICY.format(form_targets=" ".join(sorted(origins))).replace(
        "  ", " "
    )


class ContentSecurityPolicyMiddleware:
    """Send the configured Content-Security-Policy unless a view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", _policy())
        return response
