from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        # Registers this app's condition kinds and fields with the shared
        # vocabulary.
        from customers import (  # noqa: F401
            condition_fields,
            condition_kinds,
            conditions,
            sqlite,
        )
