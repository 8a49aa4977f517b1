"""Mounted at /api/v1/collection/ (docs/interfaces.md, "Collection API")."""

from django.urls import URLPattern, URLResolver, path

from payments.channels.collection import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("inquiry/", views.InquiryView.as_view(), name="collection-inquiry"),
    path("payments/", views.PaymentNoticeView.as_view(), name="collection-payments"),
    path("reversals/", views.ReversalView.as_view(), name="collection-reversals"),
    path("schema/", views.schema_view(), name="collection-schema"),
    path("docs/", views.CollectionDocsView.as_view(), name="collection-docs"),
]
