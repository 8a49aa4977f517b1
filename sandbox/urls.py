"""The sandbox bank, mounted at /sandbox/ when SANDBOX_BANK_ENABLED (development and tests).

Paths mimic a VNPay-style gateway: the pay URL and the merchant API are what
`PARTNER_SANDBOX_PAY_URL` and `PARTNER_SANDBOX_API_URL` point at.
"""

from django.urls import URLPattern, URLResolver, path

from sandbox import views

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
]
