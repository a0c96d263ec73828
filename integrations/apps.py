from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from anymail.signals import post_send

        from integrations.provider_messages import record_provider_status

        # Stores each email provider's message id and status (with anymail).
        post_send.connect(record_provider_status, dispatch_uid="provider-status")
