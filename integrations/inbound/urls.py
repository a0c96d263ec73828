"""URLs of the generic inbound webhooks."""

from django.urls import path

from integrations.inbound import views

app_name = "inbound"

urlpatterns = [
    path("v1/items", views.items, name="items"),
]
