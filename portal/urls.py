from django.urls import path

from portal.views import lookup, pay, pay_return, paylink, unsubscribe

urlpatterns = [
    path("", lookup.home, name="home"),
    path("bills/<str:code>/", lookup.bills, name="bills"),
    path("pay/start/", pay.start, name="pay-start"),
    path("pay/return/<str:partner>/", pay_return.pay_return, name="pay-return"),
    path("pay/<uuid:payment_id>/", pay.page, name="pay"),
    path("pay/<uuid:payment_id>/cancel/", pay.cancel, name="pay-cancel"),
    path("pay/<uuid:payment_id>/open/", pay.open_wallet, name="pay-open-wallet"),
    path("receipts/<uuid:payment_id>/", pay.receipt, name="receipt"),
    path("b/<str:token>/", paylink.bill_page, name="bill-pay-link"),
    path("b/<str:token>/qr.svg", paylink.bill_qr, name="bill-pay-link-qr"),
    path("unsubscribe/<str:token>/", unsubscribe.unsubscribe_page, name="unsubscribe"),
]
