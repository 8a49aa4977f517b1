from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Khách hàng"

    def ready(self) -> None:
        # Connects the sign-in ceiling's signal receivers.
        from customers.console import signin  # noqa: F401
