"""Server-to-server callbacks from partners: payment-page notifications and transfer webhooks."""

from django.urls import path

from payments.channels.momo import views as momo
from payments.channels.transfers import views as transfers
from payments.channels.vnpay import views as ipn
from payments.channels.zalopay import views as zalopay

urlpatterns = [
    path("transfers/", transfers.transfer_notification, name="callback-transfers"),
    # The wallets' own paths come before the VNPay partners' `{partner}/ipn/`.
    path("momo/ipn/", momo.momo_ipn, name="callback-momo"),
    path("zalopay/callback/", zalopay.zalopay_callback, name="callback-zalopay"),
    path("<str:partner>/ipn/", ipn.gateway_ipn, name="callback-ipn"),
]
