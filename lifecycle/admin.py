"""Admin pages for stages, success criteria and each account's current stage.

A criterion's condition is edited as text in the condition language and
stored as the tree; an invalid text is rejected with the line and column
of the fault. Changing an
account's stage here goes through set_stage(), which requires a reason and
records the move in the stage history. The stage list shows the time
accounts spend in each stage, and an account's stage page the status of
every criterion and its progress through the stage.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from conditions import describe
from conditions.forms import ConditionTextField
from conditions.widgets import ConditionBuilderWidget
from customers.roles import OwnedAccountsAdmin
from customers.stage_content import (
    EVERY_STAGE,
    StageContentItem,
    registered_stage_content,
)

# Registers the health weight sets and the account health pages.
from lifecycle import health_admin  # noqa: F401
from lifecycle.checklists import tick_item
from lifecycle.models import (
    AccountStage,
    Advancement,
    ChecklistItem,
    ChecklistTick,
    ChecklistUntick,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.reports import stage_time_report
from lifecycle.services import set_stage
from lifecycle.status import account_criteria, count_rows, required_criteria_q


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
        fields = (
            "order",
            "name",
            "description",
            "condition",
            "target_days",
            "required_to_advance",
        )


class ConditionInWords:
    """A read-only field that shows the condition as a sentence next to its JSON."""

    @admin.display(description="Condition in words")
    def condition_in_words(self, criterion: SuccessCriterion) -> str:
        if criterion.condition in (None, ""):
            return "-"
        return describe(criterion.condition)


class CriteriaFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        """Reject a stage that advances on chosen criteria but has none chosen."""
        super().clean()
        if self.instance.advancement != Advancement.CHOSEN:
            return
        chosen = [
            form
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("required_to_advance")
        ]
        if not chosen:
            raise forms.ValidationError(
                "The stage advances on the chosen criteria, but no criterion has "
                '"Required to advance" ticked, so no account would move on. Tick '
                "at least one, or set the stage to advance on all criteria."
            )


class SuccessCriterionInline(ConditionInWords, admin.StackedInline):
    model = SuccessCriterion
    form = SuccessCriterionForm
    formset = CriteriaFormSet
    extra = 0
    fields = (
        "order",
        "name",
        "description",
        "condition",
        "condition_in_words",
        "target_days",
        "required_to_advance",
    )
    readonly_fields = ("condition_in_words",)


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("order", "name", "slug", "advancement", "criteria_total")
    list_display_links = ("name",)
    prepopulated_fields = {"slug": ("name",)}
    fields = ("order", "name", "slug", "description", "advancement", "content")
    readonly_fields = ("content",)
    inlines = [SuccessCriterionInline]

    @admin.display(description="Content mapped to this stage")
    def content(self, stage: Stage) -> str:
        """List what other apps map to the stage, such as courses, with links.

        Read through customers.stage_content, because lifecycle does not
        import the apps that own the content.
        """
        if stage.pk is None:
            return "Save the stage first; content is mapped to it by its slug."
        parts = []
        for label, mapped, for_every_stage in stage_content_of(stage.slug):
            items = format_html_join(", ", "{}", ((_item_html(i),) for i in mapped))
            parts.append(
                format_html(
                    "<p><strong>{}</strong>: {}{}</p>",
                    label,
                    items or "none",
                    f" (and {for_every_stage} for every stage)"
                    if for_every_stage
                    else "",
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts)) or "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Stage]:
        return super().get_queryset(request).annotate(criteria_total=Count("criteria"))

    @admin.display(description="Success criteria", ordering="criteria_total")
    def criteria_total(self, stage: Any) -> int:
        return stage.criteria_total

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # The time in each stage over all accounts and the content mapped to
        # each stage, shown below the list
        # (templates/admin/lifecycle/stage/change_list.html).
        context = {
            **(extra_context or {}),
            "stage_times": stage_time_report(),
            "stage_content": stage_content_table(),
        }
        return super().changelist_view(request, extra_context=context)


def stage_content_of(slug: str) -> list[tuple[str, list[StageContentItem], int]]:
    """Return, per registered kind of content, the items mapped to the stage.

    Each row also counts the items mapped to every stage.
    """
    rows = []
    for source in registered_stage_content():
        by_stage = source.load()
        rows.append(
            (source.label, by_stage.get(slug, []), len(by_stage.get(EVERY_STAGE, [])))
        )
    return rows


def stage_content_table() -> list[tuple[Stage, list[tuple[str, list[str]]]]]:
    """Return each stage with the titles of its content per kind, for the list."""
    loaded = [(source.label, source.load()) for source in registered_stage_content()]
    table = []
    for stage in Stage.objects.order_by("order"):
        kinds = [
            (label, [item.title for item in by_stage.get(stage.slug, [])])
            for label, by_stage in loaded
        ]
        table.append((stage, kinds))
    return table


def _item_html(item: StageContentItem) -> str:
    note = f" ({item.note})" if item.note else ""
    if item.url:
        return format_html('<a href="{}">{}</a>{}', item.url, item.title, note)
    return format_html("{}{}", item.title, note)


@admin.register(SuccessCriterion)
class SuccessCriterionAdmin(ConditionInWords, admin.ModelAdmin):
    form = SuccessCriterionForm
    list_display = (
        "name",
        "stage",
        "condition_in_words",
        "target_days",
        "required_to_advance",
    )
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
        "required_to_advance",
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
class AccountStageAdmin(OwnedAccountsAdmin):
    """The current stage of each account. Saving here is a manual override.

    Narrowed to the accounts the user may see, as the customer record is:
    a CSM moves only the accounts they own.
    """

    form = AccountStageForm
    list_display = ("account", "stage", "entered_at", "progress", "updated_at")
    list_filter = ("stage",)
    list_select_related = ("account", "stage")
    search_fields = ("account__name", "account__external_id")
    raw_id_fields = ("account",)
    readonly_fields = ("entered_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccountStage]:
        # The required criteria of the account's stage, and how many of them
        # it met in this stay, in the list's one query.
        required = SuccessCriterion.objects.filter(
            required_criteria_q(), stage=OuterRef("stage")
        )
        met = CriterionMet.objects.filter(
            required_criteria_q("criterion__"),
            account=OuterRef("account"),
            criterion__stage=OuterRef("stage"),
        )
        return (
            super()
            .get_queryset(request)
            .annotate(required_total=count_rows(required), required_met=count_rows(met))
        )

    @admin.display(description="Criteria to move on")
    def progress(self, placement: Any) -> str:
        if not placement.required_total:
            return "none"
        return f"{placement.required_met} of {placement.required_total} met"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("account", "entered_at", "criteria_status")
        return ("entered_at",)

    def get_fields(self, request, obj=None):
        fields = ["account", "stage", "reason", "entered_at"]
        return [*fields, "criteria_status"] if obj is not None else fields

    @admin.display(description="Success criteria")
    def criteria_status(self, placement: AccountStage) -> str:
        """Show every criterion's state for the account now, as its page does."""
        statuses = account_criteria(placement.account, timezone.now()).statuses
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    status.criterion.stage.name,
                    status.criterion.name,
                    status.state.label,
                    _when(status),
                    status.reason or "",
                )
                for status in statuses
            ),
        )
        return format_html(
            "<table><thead><tr><th>Stage</th><th>Criterion</th><th>Status</th>"
            "<th>Met or due</th><th>Why not applicable</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

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


def _when(status: Any) -> str:
    if status.met_at is not None:
        return f"met {status.met_at:%Y-%m-%d}"
    if status.due_at is not None:
        return f"due {status.due_at:%Y-%m-%d}"
    return ""


class HistoryAdmin(OwnedAccountsAdmin):
    """Rows that only the lifecycle services write, narrowed to the user's accounts."""

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


@admin.register(ChecklistUntick)
class ChecklistUntickAdmin(HistoryAdmin):
    list_display = ("account", "item", "unticked_at", "unticked_by", "ticked_by")
    list_select_related = ("account", "item__stage", "unticked_by", "ticked_by")
    search_fields = ("account__name", "account__external_id", "item__name", "reason")
    date_hierarchy = "unticked_at"


@admin.register(CriterionMet)
class CriterionMetAdmin(HistoryAdmin):
    list_display = ("account", "criterion", "met_at")
    list_filter = ("criterion__stage",)
    list_select_related = ("account", "criterion__stage")
    search_fields = ("account__name", "account__external_id", "criterion__name")
    date_hierarchy = "met_at"


class OptionalConditionField(ConditionTextField):
    """A condition that may be left blank, which stores NULL."""

    def clean(self, value: Any) -> Any:
        if not str(value or "").strip():
            return None
        return super().clean(value)


class ChecklistItemForm(forms.ModelForm):
    # Optional: an item may be ticked by an event alone, or only by hand.
    condition = OptionalConditionField(
        subject="account",
        label="Condition",
        required=False,
        widget=ConditionBuilderWidget(subject="account"),
        help_text=(
            "The item is ticked for an account when this holds at a lifecycle "
            "refresh. Leave blank when no condition ticks it."
        ),
    )

    class Meta:
        model = ChecklistItem
        fields = ("stage", "order", "name", "description", "event_name", "condition")


@admin.register(ChecklistItem)
class ChecklistItemAdmin(ConditionInWords, admin.ModelAdmin):
    form = ChecklistItemForm
    list_display = ("name", "stage", "event_name", "condition_in_words", "order")
    list_filter = ("stage",)
    list_select_related = ("stage",)
    search_fields = ("name", "description", "event_name")
    readonly_fields = ("condition_in_words",)


class ChecklistTickForm(forms.ModelForm):
    class Meta:
        model = ChecklistTick
        fields = ("account", "item")


@admin.register(ChecklistTick)
class ChecklistTickAdmin(OwnedAccountsAdmin):
    """Ticks by usage, condition or hand. Adding one here ticks the item by hand.

    Narrowed to the accounts the user may see, so a CSM ticks items of the
    accounts they own.
    """

    form = ChecklistTickForm
    list_display = ("account", "item", "ticked_at", "source", "ticked_by")
    list_filter = ("source", "item")
    list_select_related = ("account", "item__stage", "ticked_by")
    search_fields = ("account__name", "account__external_id", "item__name")
    raw_id_fields = ("account",)
    date_hierarchy = "ticked_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        tick = tick_item(obj.account, obj.item, by=request.user)
        if tick is None:
            messages.info(request, f"{obj.item} was ticked for {obj.account} already.")
            tick = ChecklistTick.objects.get(account=obj.account, item=obj.item)
        obj.pk = tick.pk
        obj.refresh_from_db()
