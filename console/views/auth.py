"""Sign-in and sign-out, with django-axes counting failures and a clear page on lockout."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from console.forms import LoginForm
from customers.permissions import USE_CONSOLE


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The page shown while django-axes, or the user-name ceiling (console.signin),
    locks a user name out (also fit for `AXES_LOCKOUT_CALLABLE`, whose signature this is)."""
    ceiling_wait = getattr(request, "signin_retry_after", None)
    seconds = ceiling_wait or settings.AXES_COOLOFF_TIME.total_seconds()
    response = render(
        request,
        "console/locked_out.html",
        {
            "minutes": max(1, math.ceil(seconds / 60)),
            "limit": settings.AXES_FAILURE_LIMIT,
            "everywhere": ceiling_wait is not None,
        },
        status=429,
    )
    response["Retry-After"] = str(math.ceil(seconds))
    return response


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return settings.LOGIN_REDIRECT_URL


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.user.has_perm(USE_CONSOLE):
        return redirect(_next_url(request))
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            auth_login(request, form.get_user())
            return redirect(_next_url(request))
        if getattr(request, "axes_locked_out", False):
            # This attempt hit the limit, or came while locked: show our page, and clear the flag
            # so AxesMiddleware does not swap it for its plain-text default.
            request.axes_locked_out = False  # type: ignore[attr-defined]
            return lockout_response(request)
    return render(
        request,
        "console/login.html",
        {"form": form, "next": request.GET.get("next", request.POST.get("next", ""))},
        status=400 if form.is_bound else 200,
    )


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return redirect("console:login")
