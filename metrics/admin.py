"""Admin pages of the metrics app: impact settings, course topics and reports."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from metrics.models import (
    CourseTopic,
    ImpactSettings,
    ReportDelivery,
    ReportSchedule,
)


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


@admin.register(CourseTopic)
class CourseTopicAdmin(admin.ModelAdmin):
    list_display = ["course", "topic", "created_at"]
    list_filter = ["course"]
    search_fields = ["topic", "course__title"]
    autocomplete_fields = ["course"]


DELIVERY_COLUMNS = (
    "period_start",
    "period_end",
    "status",
    "attempts",
    "sent_at",
    "last_error",
)


class ReportDeliveryInline(admin.TabularInline):
    model = ReportDelivery
    fields = DELIVERY_COLUMNS
    readonly_fields = DELIVERY_COLUMNS
    extra = 0
    can_delete = False
    ordering = ["-period_start"]
    max_num = 0
    show_change_link = True


@admin.register(ReportSchedule)
class ReportScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "frequency", "is_active", "recipients", "updated_at"]
    list_filter = ["frequency", "is_active"]
    search_fields = ["name", "recipients"]
    fieldsets = [
        (None, {"fields": ["name", "frequency", "recipients", "is_active"]}),
        (
            "Sections",
            {
                "fields": [
                    "include_engagement",
                    "include_impact",
                    "include_outcomes",
                    "include_changes",
                ]
            },
        ),
        ("Accounts", {"fields": ["plan", "stage"]}),
    ]
    inlines = [ReportDeliveryInline]


@admin.register(ReportDelivery)
class ReportDeliveryAdmin(admin.ModelAdmin):
    """Read-only record of each sent, pending or failed report."""

    list_display = [
        "schedule",
        "period_start",
        "period_end",
        "status",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "schedule"]
    readonly_fields = [
        "schedule",
        "period_start",
        "period_end",
        "status",
        "attempts",
        "claimed_at",
        "sent_at",
        "last_error",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Deliveries are created by the periodic task, once per period.
        return False
