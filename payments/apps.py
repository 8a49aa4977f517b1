from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Thanh toán"

    def ready(self) -> None:
        from customers.signals import new_bills_loaded
        from payments import tasks

        new_bills_loaded.connect(tasks.on_new_bills_loaded, dispatch_uid="payments.new-bills")
