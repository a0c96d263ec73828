from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from anymail.signals import post_send

        from customers.signals import data_changed
        from integrations.hubspot.tasks import queue_learning_push
        from integrations.provider_messages import record_provider_status

        # Pushes learning values to HubSpot after each learning change.
        data_changed.connect(queue_learning_push, dispatch_uid="hubspot-learning")

        # Stores each email provider's message id and status (with anymail).
        post_send.connect(record_provider_status, dispatch_uid="provider-status")
