"""Server-to-server callbacks from banks: gateway notifications and transfer webhooks."""

from django.urls import path

from payments.callbacks import ipn, transfers

urlpatterns = [
    path("transfers/", transfers.transfer_notification, name="callback-transfers"),
    path("<str:partner>/ipn/", ipn.gateway_ipn, name="callback-ipn"),
]
