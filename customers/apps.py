from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        # Registers this app's condition kinds with the shared vocabulary.
        from customers import conditions  # noqa: F401
