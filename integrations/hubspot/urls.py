"""URLs of the HubSpot integration: HubSpot's webhook target URL is here."""

from django.urls import path

from integrations.hubspot import views

app_name = "hubspot"

urlpatterns = [
    path("webhooks/<int:connection_id>", views.webhook, name="webhook"),
]
