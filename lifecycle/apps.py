from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Lifecycle"

    def ready(self) -> None:
        # Registers the stage condition kinds with the shared vocabulary, and
        # the stage section and timeline source with the account page.
        from lifecycle import conditions, timeline  # noqa: F401
