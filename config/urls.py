from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:home"), name="root"),
    path("admin/", admin.site.urls),
    path("learn/", include("courses.urls")),
    path("dashboard/", include("metrics.urls")),
    path("healthz", healthz, name="healthz"),
]
