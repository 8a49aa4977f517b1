"""The WSGI entry point.

Not every request needs the whole middleware stack. Two kinds go through a handler of their own,
with only the middleware they use:

- bank callbacks (`/callbacks/`), and the sandbox's SMS gateway (`/sandbox/sms/`, which
  stands for a provider's in development and the benchmarks): machine to machine, signed,
  CSRF-exempt and stateless;
- the public lookups (`/bills/{code}/` and `/api/v1/customers/{code}/bills/`): anonymous and
  read-only, the portal's busiest pages. They keep the security headers, the language, CSRF (the
  bills page holds the form that starts a payment) and flash messages (a refused payment start
  comes back to it with one, kept in a cookie), and skip sessions, users and the sign-in
  lockout, which they never use and which cost more than the lookup's own query.

The lookups themselves (`/api/v1/customers/{code}/bills/` and `/bills/{code}/`, any method) do
not even go through a handler: config/lookups.py answers them as plain WSGI functions, with the
lookups' middleware called layer by layer; the lean handler keeps the other paths under them
(404s).

Everything else (the payment pages, the console, the admin, sign-in) gets the whole stack.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

_pages = get_wsgi_application()

from config import lookups  # noqa: E402 - imports models: only once Django is set up

CALLBACK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.common.CommonMiddleware",
]

LOOKUP_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.ContentSecurityPolicyMiddleware",
    "common.middleware.DefaultLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


class LeanHandler(WSGIHandler):
    """Django's handler with its own middleware list instead of settings.MIDDLEWARE."""

    def __init__(self, middleware: list[str]) -> None:
        self.middleware = middleware
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings

        # Django builds the chain from the setting; it is swapped only while this handler
        # builds its chain, once, at start-up.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = self.middleware
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_callbacks = LeanHandler(CALLBACK_MIDDLEWARE)
_lookups = LeanHandler(LOOKUP_MIDDLEWARE)


def handler_for(path: str) -> WSGIHandler:
    if path.startswith(("/callbacks/", "/sandbox/sms/")):
        return _callbacks
    if path.startswith(lookups.PREFIXES):
        return _lookups
    return _pages


def application(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ.get("PATH_INFO", "")
    if path.startswith(lookups.PREFIXES):
        found = lookups.lookup_in(environ)
        if found is not None:
            return lookups.serve(environ, start_response, *found)
    return handler_for(path)(environ, start_response)
