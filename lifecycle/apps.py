from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Lifecycle"

    def ready(self) -> None:
        # Registers the stage condition kinds with the shared vocabulary.
        from lifecycle import conditions  # noqa: F401
