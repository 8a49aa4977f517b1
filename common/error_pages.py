"""Error pages: JSON in the contract's shape for API and callback paths, friendly HTML elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from common.api import error_response, wants_json


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    return render(
        request,
        "errors/error.html",
        {"title": title, "message": message, "status": status},
        status=status,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return error_response("bad_request", _("The request could not be understood."), 400)
    return _page(request, 400, _("Bad request"), _("The request could not be understood."))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return error_response("forbidden", _("You are not allowed to do this."), 403)
    return _page(request, 403, _("Not allowed"), _("You are not allowed to see this page."))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return error_response("not_found", _("Not found."), 404)
    return _page(request, 404, _("Page not found"), _("The page you asked for does not exist."))


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_json(request):
        return error_response("server_error", _("Something went wrong on our side."), 500)
    return _page(
        request,
        500,
        _("Something went wrong"),
        _("Something went wrong on our side. Please try again in a few minutes."),
    )


def too_many_requests(
    request: HttpRequest, *, retry_after: int, message: str | None = None
) -> HttpResponse:
    """The friendly page for a household (or a script) that looked up too much too fast;
    `message` replaces the page's explanation, which speaks of lookups."""
    if wants_json(request):
        return rate_limited_response(retry_after=retry_after)
    response = render(
        request,
        "errors/429.html",
        {"retry_after": max(1, retry_after), "message": message},
        status=429,
    )
    response["Retry-After"] = str(max(1, retry_after))
    add_never_cache_headers(response)
    return response


def rate_limited_response(*, retry_after: int) -> HttpResponse:
    """The 429 of the JSON paths, for callers without a request (the lookup API's core)."""
    response = error_response(
        "rate_limited", _("Too many requests. Please wait a moment and try again."), 429
    )
    response["Retry-After"] = str(max(1, retry_after))
    add_never_cache_headers(response)
    return response
