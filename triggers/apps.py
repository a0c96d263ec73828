from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "triggers"
    verbose_name = "Triggers"

    def ready(self) -> None:
        # customers cannot import triggers, so it announces changes to the
        # customer record with a signal; this evaluates the triggers that
        # read the changed data for that account.
        from customers.signals import data_changed
        from triggers.events import on_data_changed

        data_changed.connect(on_data_changed, dispatch_uid="triggers.on_data_changed")

        # Adds emails, firings and CSM tasks to the account page.
        from triggers import timeline  # noqa: F401
