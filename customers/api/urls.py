from django.urls import URLPattern, URLResolver, path

from customers.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("<str:code>/bills/", views.CustomerBillsView.as_view(), name="api-customer-bills"),
]
