"""Admin pages for journeys: steps inline on a trigger, CSM tasks, webhooks, rows.

triggers.admin imports this module, so the classes here register with the
admin site and the trigger page shows the steps inline.
"""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from conditions import Subject
from conditions.forms import ConditionTextField
from customers.roles import OwnedAccountsAdmin
from triggers.csm_tasks import complete_tasks
from triggers.models import (
    CrmWriteBack,
    CsmTask,
    CsmTaskStatus,
    JourneyStep,
    PendingStep,
    StepAction,
    Trigger,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookStatus,
)
from triggers.webhook_targets import check_url
from triggers.webhooks import retry_failed_webhooks

GOAL_HELP = (
    "For a wait-for-goal step: a condition over the trigger's subject, in the "
    "same language as the trigger's condition, for example started(\"getting-"
    'started"). The journey stops as soon as it is met.'
)


class JourneyStepForm(forms.ModelForm):
    """One journey step; the goal is edited as condition text like the condition."""

    goal = ConditionTextField(
        required=False,
        label="Goal",
        help_text=GOAL_HELP,
        widget=forms.Textarea(
            attrs={"rows": 3, "cols": 80, "spellcheck": "false"},
        ),
    )

    class Meta:
        model = JourneyStep
        fields = [
            "order",
            "action",
            "delay",
            "goal",
            "wait_days",
            "course",
            "email_template",
            "task_title",
            "task_due_days",
            "webhook",
            "property_object",
            "property_name",
            "property_value",
        ]
        widgets = {
            "property_value": forms.Textarea(attrs={"rows": 1, "cols": 40}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only a create-task step reads task_due_days, so clean_task_due_days
        # requires it there and keeps the model's default elsewhere.
        self.fields["task_due_days"].required = False

    def clean_task_due_days(self) -> int:
        days = self.cleaned_data.get("task_due_days")
        if days is not None:
            return int(days)
        if self.cleaned_data.get("action") == StepAction.CREATE_TASK:
            raise forms.ValidationError(
                f"Required for the action '{StepAction.CREATE_TASK.label}': the "
                "number of days from the step to the task's due date.",
                code="required_for_action",
            )
        return int(JourneyStep._meta.get_field("task_due_days").get_default())

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is None or "goal" not in cleaned:
            return cleaned
        # Parsed here, not in clean_goal(), because the step's trigger (and
        # so the subject type) is known only once every field is cleaned.
        text = cleaned["goal"] or ""
        if not text.strip():
            cleaned["goal"] = None
            return cleaned
        try:
            field = cast(ConditionTextField, self.fields["goal"])
            cleaned["goal"] = field.to_tree(text, self._subject(cleaned))
        except forms.ValidationError as exc:
            self.add_error("goal", exc)
        return cleaned

    def _subject(self, cleaned: dict[str, Any]) -> Subject:
        # The inline formset's foreign key field cleans to the trigger being
        # edited, whose subject type the trigger form has already read.
        trigger = cleaned.get("trigger")
        if not isinstance(trigger, Trigger):
            raise forms.ValidationError(
                "Save the trigger first: a goal is checked against the "
                "trigger's subject type.",
                code="missing_trigger",
            )
        return cast(Subject, trigger.subject_type)

    def _post_clean(self) -> None:
        # When the goal text is invalid, the model's clean() would add a
        # second error ("Required ...") for the tree that was never built,
        # so only the first is kept. Both hooks are Django's, though private.
        errors = self._errors  # type: ignore[attr-defined]
        goal_errors = errors["goal"].copy() if errors and "goal" in errors else None
        super()._post_clean()  # type: ignore[misc]
        if goal_errors is not None:
            self._errors["goal"] = goal_errors  # type: ignore[attr-defined]


class JourneyStepInline(admin.StackedInline):
    """The journey of a trigger, edited on the trigger's page."""

    model = JourneyStep
    form = JourneyStepForm
    extra = 0
    ordering = ["order"]
    fieldsets = [
        (None, {"fields": [("order", "action", "delay")]}),
        ("Wait for a goal", {"fields": ["goal", "wait_days"]}),
        (
            "Action settings",
            {
                "fields": [
                    "course",
                    "email_template",
                    ("task_title", "task_due_days"),
                    "webhook",
                    ("property_object", "property_name", "property_value"),
                ]
            },
        ),
    ]


class ReadOnlyRowsAdmin(admin.ModelAdmin):
    """Rows written by sweeps, runners and workers; readable, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TaskListFilter(admin.SimpleListFilter):
    title = "tasks"
    parameter_name = "tasks"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("mine", "My open tasks"), ("overdue", "Overdue")]

    def queryset(self, request: Any, queryset: QuerySet[CsmTask]) -> QuerySet[CsmTask]:
        if self.value() == "mine":
            return queryset.filter(owner=request.user, status=CsmTaskStatus.OPEN)
        if self.value() == "overdue":
            return queryset.filter(
                status=CsmTaskStatus.OPEN, due_on__lt=timezone.localdate()
            )
        return queryset


@admin.register(CsmTask)
class CsmTaskAdmin(OwnedAccountsAdmin):
    """Tasks of the accounts the user may see; a CSM works those of their own."""

    list_display = ["title", "account", "owner", "due_on", "status", "is_overdue"]
    # Only owners of the tasks the user may see, not every user.
    list_filter = [
        TaskListFilter,
        "status",
        ("owner", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["title", "details", "account__name"]
    date_hierarchy = "due_on"
    list_select_related = ["account", "owner"]
    raw_id_fields = ["account"]
    readonly_fields = ["firing", "step", "completed_at", "created_at", "updated_at"]
    actions = ["mark_done"]

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> Any:
        # A task goes to a staff member, never to a learner's portal user.
        if db_field.name == "owner":
            kwargs["queryset"] = get_user_model().objects.filter(
                is_staff=True, is_active=True
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(boolean=True, description="overdue")
    def is_overdue(self, task: CsmTask) -> bool:
        return task.status == CsmTaskStatus.OPEN and task.due_on < timezone.localdate()

    @admin.action(description="Mark selected tasks done")
    def mark_done(self, request: HttpRequest, queryset: QuerySet[CsmTask]) -> None:
        done = complete_tasks(queryset.values_list("pk", flat=True))
        self.message_user(request, f"Marked {done} tasks done.")


class WebhookEndpointForm(forms.ModelForm):
    # A plain text field: Django's URL form field would put http:// in front
    # of a URL without a scheme, and the endpoint must name its scheme.
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text=(
            "The http:// or https:// URL each call is POSTed to, without a user "
            "name or password. Link-local and cloud metadata addresses are "
            "rejected."
        ),
        widget=forms.URLInput(attrs={"size": 80}),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "secret", "is_active"]

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        try:
            check_url(url)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid_url") from exc
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "is_active", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "url"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyRowsAdmin):
    list_display = [
        "created_at",
        "endpoint",
        "firing",
        "status",
        "attempts",
        "response_status",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "endpoint"]
    search_fields = ["idempotency_key", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["endpoint", "firing__trigger"]
    raw_id_fields = ["firing", "step"]
    actions = ["retry"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # Retrying changes rows that the admin otherwise shows read-only.
        return request.user.has_perm("triggers.change_webhookdelivery")

    @admin.action(
        description="Retry selected failed webhook calls", permissions=["retry"]
    )
    def retry(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        retried = retry_failed_webhooks(ids)
        self.message_user(request, f"Queued {retried} failed webhook calls again.")
        if len(ids) > retried:
            self.message_user(
                request,
                f"Skipped {len(ids) - retried} calls that were not in status "
                f"{WebhookStatus.FAILED.label!r}.",
                messages.WARNING,
            )


@admin.register(PendingStep)
class PendingStepAdmin(ReadOnlyRowsAdmin):
    list_display = ["due_at", "step", "firing", "status", "finished_at", "note"]
    list_filter = ["status", "step__trigger", "step__action"]
    search_fields = ["note", "firing__contact__email", "firing__account__name"]
    date_hierarchy = "due_at"
    list_select_related = ["step__trigger", "firing__trigger"]


@admin.register(CrmWriteBack)
class CrmWriteBackAdmin(ReadOnlyRowsAdmin):
    list_display = [
        "created_at",
        "object_type",
        "account",
        "contact",
        "property_name",
        "value",
        "status",
    ]
    list_filter = ["status", "object_type", "property_name"]
    search_fields = ["property_name", "account__name", "contact__email"]
    list_select_related = ["account", "contact"]
