"""Admin pages of the metrics app: the impact settings."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from metrics.models import ImpactSettings


@admin.register(ImpactSettings)
class ImpactSettingsAdmin(admin.ModelAdmin):
    fields = ["minutes_per_manual_session", "program_started_on", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The single row is created by ImpactSettings.load(), never by hand.
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        """Open the single row's form instead of a list of one."""
        settings = ImpactSettings.load()
        return HttpResponseRedirect(
            reverse("admin:metrics_impactsettings_change", args=[settings.pk])
        )
