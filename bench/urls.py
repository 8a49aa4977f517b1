"""The portal's URLs plus the baseline of the lookup benchmark: a bare Django view."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from portal.urls import handler400, handler403, handler404, handler500
from portal.urls import urlpatterns as portal

BODY = {"customer": {"code": "PA14HT0000001"}, "bills": [], "total_due": 0}


def bare(request: HttpRequest) -> JsonResponse:
    """A constant JSON body through the same middleware, server and settings."""
    return JsonResponse(BODY)


urlpatterns = [path("bench/bare/", bare), *portal]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
