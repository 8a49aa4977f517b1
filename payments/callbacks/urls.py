"""Server-to-server callbacks from banks: gateway notifications and transfer webhooks."""

from django.urls import path

from payments.channels.transfers import views as transfers
from payments.channels.vnpay import views as ipn

urlpatterns = [
    path("transfers/", transfers.transfer_notification, name="callback-transfers"),
    path("<str:partner>/ipn/", ipn.gateway_ipn, name="callback-ipn"),
]
