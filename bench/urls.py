"""The portal's URLs plus the baselines of the lookup benchmark: bare Django views.

They live under /bills/ so that config/wsgi.py serves them through the same handler, with the
same middleware, as the lookups they are compared with.
"""

from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as portal

# A lookup answer's size and shape is measured on the running province (bench_lookup writes
# the constant body and page there before the server starts).
CONSTANT_BODY = "bench/constant-body.json"
CONSTANT_PAGE = "bench/constant-page.html"


@cache
def _constant_body() -> bytes:
    return (settings.VAR_DIR / "bench-templates" / CONSTANT_BODY).read_bytes()


def bare_json(request: HttpRequest) -> HttpResponse:
    """A constant JSON body of a lookup's size: what any view costs on this stack."""
    return HttpResponse(_constant_body(), content_type="application/json")


def bare_page(request: HttpRequest) -> HttpResponse:
    """A constant template of a bills page's size, rendered."""
    return render(request, CONSTANT_PAGE)


urlpatterns = [
    path("bills/bench/bare-json/", bare_json),
    path("bills/bench/bare-page/", bare_page),
    *portal,
]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
