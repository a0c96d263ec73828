from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from conditions.builder_views import builder_urls
from config.health import healthz

# Staff who may see or edit triggers or success criteria may use the rule
# builder's endpoints. Listed here, because the conditions package imports
# no app and the trigger and lifecycle admins must not import each other.
CONDITION_BUILDER_PERMISSIONS = (
    "triggers.add_trigger",
    "triggers.change_trigger",
    "triggers.view_trigger",
    "lifecycle.add_successcriterion",
    "lifecycle.change_successcriterion",
    "lifecycle.view_successcriterion",
)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:home"), name="root"),
    # The portal first: its heartbeat and lesson pages are the busiest
    # requests, and no other prefix here starts with learn/.
    path("learn/", include("courses.urls")),
    # Before the admin's own URLs, whose last pattern catches every path.
    path(
        "admin/conditions/",
        include(builder_urls(admin.site, CONDITION_BUILDER_PERMISSIONS)),
    ),
    path("admin/csv-import/", include("integrations.csv_import.urls")),
    path("admin/", admin.site.urls),
    path("dashboard/", include("metrics.urls")),
    path("accounts/", include("customers.urls")),
    # The stage section's forms; lifecycle serves them, because customers,
    # which draws the page, cannot import lifecycle.
    path("accounts/", include("lifecycle.urls")),
    path("healthz", healthz, name="healthz"),
    path("segment/", include("integrations.urls")),
    path("hubspot/", include("integrations.hubspot.urls")),
    path("inbound/", include("integrations.inbound.urls")),
]
