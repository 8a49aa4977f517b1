"""The WSGI entry point.

Bank callbacks (`/callbacks/`), and the sandbox's SMS gateway (`/sandbox/sms/`, which stands for
a provider's in development and the benchmarks), are machine to machine, signed, CSRF-exempt and
stateless: they go
through a handler with only the middleware they need (security and content-policy headers, the
allowed-host check), not sessions, users, messages or the sign-in lockout, which cost as much
as storing the callback itself. Everything else gets the whole stack.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

_pages = get_wsgi_application()

CALLBACK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "django.middleware.common.CommonMiddleware",
]


class CallbackHandler(WSGIHandler):
    """Django's handler with CALLBACK_MIDDLEWARE instead of settings.MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings

        # Django builds the chain from the setting; it is swapped only while this handler
        # builds its chain, once, at start-up.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = CALLBACK_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


_callbacks = CallbackHandler()


def application(environ, start_response):  # type: ignore[no-untyped-def]
    if environ.get("PATH_INFO", "").startswith(("/callbacks/", "/sandbox/sms/")):
        return _callbacks(environ, start_response)
    return _pages(environ, start_response)
