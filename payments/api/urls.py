from django.urls import path

from payments.api import views

urlpatterns = [
    path("", views.PaymentListCreateView.as_view(), name="api-payments"),
    path("<uuid:payment_id>/", views.PaymentDetailView.as_view(), name="api-payment"),
    path("<uuid:payment_id>/qr.png", views.PaymentQRPngView.as_view(), name="payment-qr-png"),
    path("<uuid:payment_id>/qr.svg", views.PaymentQRSvgView.as_view(), name="payment-qr-svg"),
]
