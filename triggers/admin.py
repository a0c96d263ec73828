"""Admin pages for CSMs: triggers, email templates, firings, the outbox, sweeps."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from conditions import describe, fields, kinds
from conditions.formatting import signature
from customers.roles import OwnedAccountsAdmin
from triggers import admin_views, delivery_forms, services
from triggers.forms import TriggerForm
from triggers.journey_admin import JourneyStepInline
from triggers.models import (
    DeliveryRules,
    EmailTemplate,
    Firing,
    OutboxEmail,
    OutboxStatus,
    Sweep,
    Trigger,
)


def condition_reference() -> list[dict[str, Any]]:
    """Describe each registered condition kind for the trigger form's reference."""
    rows = []
    for name, kind in sorted(kinds().items()):
        params = []
        for param_name, param in kind.params.items():
            words = param_name
            if param.choices:
                words += (
                    " (" + " | ".join(str(choice) for choice in param.choices) + ")"
                )
            if not param.required:
                words += f", optional, default {param.default!r}"
            params.append(words)
        rows.append(
            {
                "name": name,
                "text": signature(kind),
                "label": kind.label,
                "subjects": ", ".join(kind.subjects),
                "params": "; ".join(params) or "none",
            }
        )
    return rows


def field_reference() -> list[dict[str, Any]]:
    """List the fields a condition may compare, for the trigger form's reference."""
    return [
        {"path": path, "type": field.type, "label": field.label}
        for path, field in sorted(fields().items())
    ]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by sweeps and workers; CSMs read them but never edit them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    form = TriggerForm
    inlines = [JourneyStepInline]
    change_form_template = "admin/triggers/trigger/change_form.html"
    list_display = [
        "name",
        "slug",
        "subject_type",
        "condition_description",
        "occurrence",
        "enroll_course",
        "email_template",
        "is_active",
    ]
    list_filter = ["is_active", "subject_type", "occurrence", "enroll_course"]
    search_fields = ["name", "slug", "description"]
    readonly_fields = [
        "condition_description",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["evaluate_now", "activate", "deactivate"]
    fieldsets = [
        (
            None,
            {"fields": ["name", "slug", "description", "is_active", "disabled_reason"]},
        ),
        (
            "Condition",
            {
                "fields": [
                    "subject_type",
                    "condition",
                    "condition_description",
                    "occurrence",
                    "reentry_days",
                ]
            },
        ),
        (
            "Actions",
            {
                "fields": [
                    "enroll_course",
                    "enroll_path",
                    "email_template",
                    "recipients",
                    "holdout_percent",
                    "unenroll_when_unmatched",
                ]
            },
        ),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="condition in words")
    def condition_description(self, trigger: Trigger) -> str:
        return describe(trigger.condition) if trigger.condition else "-"

    def get_urls(self) -> list[URLPattern]:
        # Preview, backtest and activation pages of one trigger.
        return admin_views.trigger_urls(self) + super().get_urls()

    def save_model(
        self, request: HttpRequest, obj: Trigger, form: Any, change: bool
    ) -> None:
        # Switching on from the form is held until the activation page,
        # where the CSM chooses about backfill.
        admin_views.hold_activation(obj, form, change)
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: Trigger, post_url_continue: str | None = None
    ) -> HttpResponse:
        held = admin_views.activation_redirect(request, obj)
        return held or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Trigger) -> HttpResponse:
        held = admin_views.activation_redirect(request, obj)
        return held or super().response_change(request, obj)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        extra_context = {
            **(extra_context or {}),
            "condition_kinds": condition_reference(),
            "condition_fields": field_reference(),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(description="Evaluate selected triggers now")
    def evaluate_now(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        report = services.run_sweep(triggers=queryset.order_by("pk"))
        self.message_user(
            request,
            f"Evaluated {report.triggers_evaluated} triggers: "
            f"{report.matched} matched, "
            f"{report.fired} new firings, {report.enrollments} new enrollments, "
            f"{report.emails_queued} emails queued.",
        )
        for slug, error in report.failures:
            self.message_user(
                request, f"Trigger {slug} failed: {error}", messages.ERROR
            )

    @admin.action(description="Activate selected trigger…", permissions=["change"])
    def activate(
        self, request: HttpRequest, queryset: QuerySet[Trigger]
    ) -> HttpResponse | None:
        return admin_views.activate_selected(self, request, queryset)

    @admin.action(description="Deactivate selected triggers")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        updated = queryset.update(is_active=False)
        self.message_user(request, f"Deactivated {updated} triggers.")


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "subject", "updated_at"]
    search_fields = ["name", "slug", "subject", "body"]
    readonly_fields = ["created_at", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Firing)
class FiringAdmin(OwnedAccountsAdmin, ReadOnlyAdmin):
    list_display = [
        "fired_at",
        "trigger",
        "subject_type",
        "account",
        "contact",
        "occurrence_key",
        "outcome",
        "sweep",
    ]
    list_filter = ["outcome", "trigger", "subject_type"]
    search_fields = [
        "trigger__slug",
        "trigger__name",
        "account__name",
        "contact__email",
        "occurrence_key",
    ]
    date_hierarchy = "fired_at"
    list_select_related = ["trigger", "account", "contact", "sweep"]
    raw_id_fields = ["account", "contact", "sweep"]


@admin.register(OutboxEmail)
class OutboxEmailAdmin(OwnedAccountsAdmin, ReadOnlyAdmin):
    account_field = "contact__account"
    list_display = [
        "created_at",
        "to_email",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "skip_reason",
    ]
    list_filter = ["status", "template"]
    search_fields = ["to_email", "subject", "message_id", "last_error", "skip_reason"]
    date_hierarchy = "created_at"
    list_select_related = ["template"]
    raw_id_fields = ["firing", "contact"]
    actions = ["retry"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Retrying changes rows that the admin otherwise shows read-only.
        return request.user.has_perm("triggers.change_outboxemail")

    @admin.action(description="Retry selected failed emails", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        retried = services.retry_failed_email(ids)
        skipped = len(ids) - retried
        self.message_user(request, f"Queued {retried} failed emails for another try.")
        if skipped:
            self.message_user(
                request,
                f"Skipped {skipped} emails that were not in status "
                f"{OutboxStatus.FAILED.label!r}.",
                messages.WARNING,
            )


@admin.register(Sweep)
class SweepAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "as_of",
        "started_at",
        "finished_at",
        "triggers_evaluated",
        "matched",
        "fired",
        "enrollments",
        "emails_queued",
    ]
    date_hierarchy = "as_of"
    search_fields = ["pk"]


@admin.register(DeliveryRules)
class DeliveryRulesAdmin(admin.ModelAdmin):
    """The single row of delivery rules; without it no cap or quiet hours apply."""

    form = delivery_forms.DeliveryRulesForm
    list_display = [
        "__str__",
        "cap_emails",
        "cap_window_days",
        "max_deferral_days",
        "quiet_hours_enabled",
        "send_from",
        "send_until",
        "default_time_zone",
        "updated_at",
    ]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row applies to the whole site; a second would be ignored.
        return (
            super().has_add_permission(request) and not DeliveryRules.objects.exists()
        )
