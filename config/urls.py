"""Root URLs. Each capability owns its own URL module; this file only mounts them."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from common import error_pages
from config import health

urlpatterns = [
    path("", include("portal.urls")),
    path("health/", health.health, name="health"),
    path("api/v1/customers/", include("customers.api.urls")),
    path("api/v1/payments/", include("payments.api.urls")),
    path("api/v1/collection/", include("payments.channels.collection.urls")),
    path("callbacks/", include("payments.callbacks.urls")),
    path("console/", include("console.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: the CSP refuses inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

if settings.SANDBOX_BANK_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

# Unknown API and callback paths answer in JSON even with DEBUG on.
urlpatterns.append(re_path(r"^(api|callbacks)/", error_pages.page_not_found))

handler400 = error_pages.bad_request
handler403 = error_pages.permission_denied
handler404 = error_pages.page_not_found
handler500 = error_pages.server_error
