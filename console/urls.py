"""The staff console, mounted at /console/ (settings.LOGIN_URL is console:login)."""

from django.urls import URLPattern, URLResolver, path

from console.views import actions, auth, dashboard, pages

app_name = "console"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", pages.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("customers/", pages.search, name="search"),
    path("customers/<str:code>/", pages.customer, name="customer"),
    path("customers/<str:code>/cash/", actions.cash, name="cash"),
    path("customers/<str:code>/held-money/", actions.credit_apply, name="credit-apply"),
    path("payments/<uuid:payment_id>/receipt/", pages.payment_receipt, name="receipt"),
    path("payments/<uuid:payment_id>/recheck/", actions.payment_recheck, name="payment-recheck"),
    path(
        "payments/<uuid:payment_id>/resend-receipt/",
        actions.payment_resend_receipt,
        name="payment-resend-receipt",
    ),
    path("payments/<uuid:payment_id>/refund/", actions.payment_refund, name="payment-refund"),
    path("payments/<uuid:payment_id>/review/", actions.payment_review, name="payment-review"),
    path("reminders/<int:message_id>/resend/", actions.reminder_resend, name="reminder-resend"),
    path("queues/<slug:slug>/", pages.queue, name="queue"),
    path("transfers/<int:transfer_id>/", pages.transfer, name="transfer"),
    path(
        "transfers/<int:transfer_id>/assign/<uuid:payment_id>/",
        actions.transfer_assign,
        name="transfer-assign",
    ),
    path("transfers/<int:transfer_id>/resolve/", actions.transfer_resolve, name="transfer-resolve"),
    path("audit/", pages.audit, name="audit"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/cash/", dashboard.cash_customers, name="cash-customers"),
    path("dashboard/cash.csv", dashboard.cash_customers_csv, name="cash-customers-csv"),
]
