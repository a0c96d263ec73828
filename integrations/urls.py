"""URLs of the Segment-compatible API; a Segment library's host is their base URL."""

from django.urls import path

from integrations.segment import views

app_name = "segment"

urlpatterns = [
    path("v1/batch", views.batch, name="batch"),
    # Segment's name for the same endpoint when loading historical data.
    path("v1/import", views.batch, name="import"),
    path("v1/identify", views.single_call("identify"), name="identify"),
    path("v1/track", views.single_call("track"), name="track"),
    path("v1/group", views.single_call("group"), name="group"),
    path("v1/page", views.single_call("page"), name="page"),
]
