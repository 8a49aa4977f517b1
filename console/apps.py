from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Bàn làm việc của nhân viên"

    def ready(self) -> None:
        # Connects the sign-in ceiling's signal receivers.
        from console import signin  # noqa: F401
