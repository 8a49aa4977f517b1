"""Who may do what in the console: role groups carry permissions (customers/permissions.py).

Every console view is wrapped in `staff_required(...)`: an anonymous visitor is sent to the login
page and sees nothing; a signed-in user without the console permission, or without the
permission of this page or action, gets a 403 page and nothing is done.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from customers.permissions import USE_CONSOLE

View = Callable[..., HttpResponseBase]


def staff_required(*perms: str) -> Callable[[View], View]:
    """Require a signed-in user holding the console permission and every one of `perms`."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.has_perms((USE_CONSOLE, *perms)):
                return render(request, "console/forbidden.html", status=403)
            return view(request, *args, **kwargs)

        # Staff pages show personal data: never stored by a browser or a proxy.
        return never_cache(wrapped)

    return decorator
