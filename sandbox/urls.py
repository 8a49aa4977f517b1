"""The sandbox bank, mounted at /sandbox/ when SANDBOX_BANK_ENABLED (development and tests).

Paths mimic a VNPay-style gateway: the pay URL and the merchant API are what
`PARTNER_SANDBOX_PAY_URL` and `PARTNER_SANDBOX_API_URL` point at. The wallets live under
/sandbox/momo/ and /sandbox/zalopay/: the `PARTNER_MOMO_API_URL` and `PARTNER_ZALOPAY_API_URL`
of development, to which their own API paths are appended.
"""

from django.urls import URLPattern, URLResolver, path

from sandbox import views, wallet_views

app_name = "sandbox"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.index, name="index"),
    path("paymentv2/vpcpay.html", views.pay, name="pay"),
    path("paymentv2/decide/", views.decide, name="decide"),
    path("merchant_webapi/api/transaction", views.querydr, name="querydr"),
    path("qr/", views.qr, name="qr"),
    path("outbox/<int:notification_id>/send/", views.send_now, name="send-now"),
    path("sms/", views.sms_gateway, name="sms-gateway"),
    path("messages/", views.outbox, name="messages"),
    path("momo/v2/gateway/api/create", wallet_views.momo_create, name="momo-create"),
    path("momo/v2/gateway/api/query", wallet_views.momo_query, name="momo-query"),
    path("momo/pay/<str:token>/", wallet_views.momo_pay, name="momo-pay"),
    path("momo/app/<str:token>/", wallet_views.momo_pay, {"via_app": True}, name="momo-app"),
    path("momo/decide/", wallet_views.momo_decide, name="momo-decide"),
    path("zalopay/v2/create", wallet_views.zalopay_create, name="zalopay-create"),
    path("zalopay/v2/query", wallet_views.zalopay_query, name="zalopay-query"),
    path("zalopay/openinapp", wallet_views.zalopay_openinapp, name="zalopay-openinapp"),
    path("zalopay/decide/", wallet_views.zalopay_decide, name="zalopay-decide"),
]
