"""Admin pages for stages, success criteria and each account's current stage.

A criterion's condition is edited as text in the condition language and
stored as the tree; an invalid text is rejected with the line and column
of the fault. Changing an
account's stage here goes through set_stage(), which requires a reason and
records the move in the stage history.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from conditions import describe
from conditions.forms import ConditionTextField
from conditions.widgets import ConditionBuilderWidget

# Registers the health weight sets and the account health pages.
from lifecycle import health_admin  # noqa: F401
from lifecycle.models import (
    AccountStage,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.services import set_stage


class SuccessCriterionForm(forms.ModelForm):
    # Written as text over the account, such as contact_count >= 3; cleaned
    # to the stored tree, or rejected with the line and column of the fault.
    condition = ConditionTextField(
        subject="account",
        label="Condition",
        widget=ConditionBuilderWidget(subject="account"),
    )

    class Meta:
        model = SuccessCriterion
        fields = ("order", "name", "description", "condition", "target_days")


class ConditionInWords:
    """A read-only field that shows the condition as a sentence next to its JSON."""

    @admin.display(description="Condition in words")
    def condition_in_words(self, criterion: SuccessCriterion) -> str:
        if criterion.condition in (None, ""):
            return "-"
        return describe(criterion.condition)


class SuccessCriterionInline(ConditionInWords, admin.StackedInline):
    model = SuccessCriterion
    form = SuccessCriterionForm
    extra = 0
    fields = (
        "order",
        "name",
        "description",
        "condition",
        "condition_in_words",
        "target_days",
    )
    readonly_fields = ("condition_in_words",)


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("order", "name", "slug", "criteria_total")
    list_display_links = ("name",)
    prepopulated_fields = {"slug": ("name",)}
    inlines = [SuccessCriterionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Stage]:
        return super().get_queryset(request).annotate(criteria_total=Count("criteria"))

    @admin.display(description="Success criteria", ordering="criteria_total")
    def criteria_total(self, stage: Any) -> int:
        return stage.criteria_total


@admin.register(SuccessCriterion)
class SuccessCriterionAdmin(ConditionInWords, admin.ModelAdmin):
    form = SuccessCriterionForm
    list_display = ("name", "stage", "condition_in_words", "target_days")
    list_filter = ("stage",)
    list_select_related = ("stage",)
    search_fields = ("name", "description")
    fields = (
        "stage",
        "order",
        "name",
        "description",
        "condition",
        "condition_in_words",
        "target_days",
    )
    readonly_fields = ("condition_in_words",)


class AccountStageForm(forms.ModelForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this account is moved by hand; kept in the stage history.",
    )

    class Meta:
        model = AccountStage
        fields = ("account", "stage")


@admin.register(AccountStage)
class AccountStageAdmin(admin.ModelAdmin):
    """The current stage of each account. Saving here is a manual override."""

    form = AccountStageForm
    list_display = ("account", "stage", "entered_at", "updated_at")
    list_filter = ("stage",)
    list_select_related = ("account", "stage")
    search_fields = ("account__name", "account__external_id")
    raw_id_fields = ("account",)
    readonly_fields = ("entered_at",)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("account", "entered_at")
        return ("entered_at",)

    def has_delete_permission(self, request, obj=None) -> bool:
        # After a delete the next evaluation would place the account again as new.
        return False

    def save_model(self, request, obj, form, change) -> None:
        account = obj.account
        change_row = set_stage(
            account,
            form.cleaned_data["stage"],
            by=request.user,
            reason=form.cleaned_data["reason"],
        )
        if change_row is None:
            messages.info(request, f"{account} is already in {obj.stage}.")
        saved = AccountStage.objects.get(account=account)
        obj.pk = saved.pk
        obj.refresh_from_db()


class HistoryAdmin(admin.ModelAdmin):
    """Rows that only evaluation and set_stage() write."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StageChange)
class StageChangeAdmin(HistoryAdmin):
    list_display = (
        "account",
        "from_stage",
        "to_stage",
        "changed_at",
        "source",
        "changed_by",
    )
    list_filter = ("source", "to_stage")
    list_select_related = ("account", "from_stage", "to_stage", "changed_by")
    search_fields = ("account__name", "account__external_id", "reason")
    date_hierarchy = "changed_at"


@admin.register(CriterionMet)
class CriterionMetAdmin(HistoryAdmin):
    list_display = ("account", "criterion", "met_at")
    list_filter = ("criterion__stage",)
    list_select_related = ("account", "criterion__stage")
    search_fields = ("account__name", "account__external_id", "criterion__name")
    date_hierarchy = "met_at"
