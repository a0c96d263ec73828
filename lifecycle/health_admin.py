"""Admin pages for health: the weight sets, and each account's score and trend.

A weight set shows one whole-number field per registered measure, so a
measure that an app registers appears here without a migration. Saving
rejects a negative or non-numeric weight, naming the value, and a set
without any positive weight. Scores change at the next daily computation,
or at once with the recompute actions.
"""

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.forms.models import ModelFormMetaclass
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from customers.health import (
    CRM_KEY,
    HEALTH_WEIGHTS,
    InvalidHealthConfiguration,
    Measure,
    WeightSet,
    check_weight_set,
    registered_measures,
)
from customers.models import HealthScore
from customers.roles import OwnedAccountsAdmin
from lifecycle.health import compute_health, replace_weights
from lifecycle.models import AccountHealth, HealthSource, HealthWeightSet
from lifecycle.tasks import recompute_health

# Days of history in the trend of the account health pages.
TREND_DAYS = 30
MAX_WEIGHT = 1000
WEIGHT_PREFIX = "weight_"


def weight_field_name(measure_key: str) -> str:
    return f"{WEIGHT_PREFIX}{measure_key}"


class WeightField(forms.Field):
    """A measure's weight: a whole number from 0 to MAX_WEIGHT, blank for 0."""

    def __init__(self, measure: Measure) -> None:
        super().__init__(
            label=measure.label,
            help_text=measure.description,
            required=False,
            widget=forms.NumberInput(attrs={"min": 0, "max": MAX_WEIGHT}),
        )

    def to_python(self, value: Any) -> int:
        text = "" if value is None else str(value).strip()
        if not text:
            return 0
        try:
            weight = int(text)
        except ValueError:
            weight = -1
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValidationError(
                f"Weight {text!r} for {self.label} is invalid; give a whole "
                f"number from 0 to {MAX_WEIGHT}.",
                code="invalid",
            )
        return weight


class HealthWeightSetForm(forms.ModelForm):
    """The stage, source and CRM property; weight_set_form() adds the weights."""

    class Meta:
        model = HealthWeightSet
        fields = ("stage", "source", "crm_property")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            stored = {w.measure: w.weight for w in self.instance.weights.all()}
        else:
            stored = dict(HEALTH_WEIGHTS)
        for key in registered_measures():
            field = self.fields.get(weight_field_name(key))
            if field is not None:
                field.initial = stored.get(key, 0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stage = cleaned.get("stage")
        name = f"stage {stage.slug}" if stage else "default"
        if cleaned.get("source") == HealthSource.CRM_PROPERTY:
            cleaned["crm_property"] = (cleaned.get("crm_property") or "").strip()
            if not cleaned["crm_property"]:
                self.add_error(
                    "crm_property",
                    "A CRM property source needs the property's name; give it, "
                    "or choose weighted measures.",
                )
            return cleaned

        weights = self.weights()
        if weights is not None:
            try:
                check_weight_set(WeightSet(name, weights))
            except InvalidHealthConfiguration as exc:
                raise ValidationError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from exc
        return cleaned

    def weights(self) -> dict[str, int] | None:
        """Return the cleaned weights by measure key, or None if one is invalid."""
        values = {}
        for key in registered_measures():
            name = weight_field_name(key)
            if name not in self.fields:
                continue
            if name not in self.cleaned_data:
                return None
            values[key] = self.cleaned_data[name]
        return values


def weight_set_form() -> type[HealthWeightSetForm]:
    """Build the form with one weight field per measure registered now."""
    fields = {
        weight_field_name(key): WeightField(measure)
        for key, measure in registered_measures().items()
    }
    form = ModelFormMetaclass("HealthWeightSetForm", (HealthWeightSetForm,), fields)
    return cast(type[HealthWeightSetForm], form)


@admin.register(HealthWeightSet)
class HealthWeightSetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "source", "weights_in_words", "updated_at")
    list_select_related = ("stage",)
    actions = ["recompute_every_account"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[HealthWeightSet]:
        return super().get_queryset(request).prefetch_related("weights")

    def get_form(
        self,
        request: HttpRequest,
        obj: Any | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        kwargs["form"] = weight_set_form()
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        weights = [weight_field_name(key) for key in registered_measures()]
        return [
            (None, {"fields": ("stage", "source", "crm_property")}),
            (
                "Weights of the measures",
                {
                    "fields": weights,
                    "description": (
                        "Each account's score is the weighted mean of the measures "
                        "with data for it, from 0 to 100. A weight of 0 leaves a "
                        "measure out. Used only with weighted measures as source."
                    ),
                },
            ),
        ]

    def save_model(
        self, request: HttpRequest, obj: Any, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        replace_weights(obj, form.weights() or {})
        messages.info(
            request,
            "Scores follow the new weights from the next daily computation; "
            "use the action to recompute today's scores now.",
        )

    @admin.display(description="Weights")
    def weights_in_words(self, weight_set: HealthWeightSet) -> str:
        if weight_set.source == HealthSource.CRM_PROPERTY:
            return f"CRM property {weight_set.crm_property}"
        labels = {key: measure.label for key, measure in registered_measures().items()}
        return ", ".join(
            f"{labels.get(w.measure, w.measure)} {w.weight}"
            for w in weight_set.weights.all()
            if w.weight > 0
        )

    @admin.action(description="Recompute today's health of every account")
    def recompute_every_account(
        self, request: HttpRequest, queryset: QuerySet[HealthWeightSet]
    ) -> None:
        today = timezone.localdate().isoformat()
        # Scoring every account can take a minute, so a worker does it once
        # the request's transaction commits.
        transaction.on_commit(lambda: recompute_health.delay(today))
        messages.info(
            request, f"Health of every account for {today} is being recomputed."
        )


@admin.register(AccountHealth)
class AccountHealthAdmin(OwnedAccountsAdmin):
    """Each account's score, its trend and the contribution of each measure.

    A CSM without customers.view_all_accounts sees only their own accounts,
    as on the customer record's admin pages.
    """

    account_field = ""

    list_display = ("name", "health_score", "change_in_period", "trend", "stage")
    list_filter = ("lifecycle__stage",)
    search_fields = ("name", "external_id")
    fields = (
        "name",
        "external_id",
        "health_score",
        "stage",
        "trend",
        "contributions",
        "history",
    )
    readonly_fields = fields
    actions = ["recompute_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        since = timezone.localdate() - timedelta(days=TREND_DAYS - 1)
        recent = HealthScore.objects.filter(scored_on__gte=since).order_by("scored_on")
        return (
            super()
            .get_queryset(request)
            .select_related("lifecycle__stage")
            .prefetch_related(
                Prefetch("health_scores", recent, to_attr="recent_scores")
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Stage")
    def stage(self, account: Any) -> str:
        placement = getattr(account, "lifecycle", None)
        return str(placement.stage) if placement is not None else "-"

    @admin.display(description=f"Change in {TREND_DAYS} days")
    def change_in_period(self, account: Any) -> str:
        scores = account.recent_scores
        if len(scores) < 2:
            return "-"
        return f"{scores[-1].score - scores[0].score:+d}"

    @admin.display(description=f"Last {TREND_DAYS} days")
    def trend(self, account: Any) -> SafeString | str:
        return trend_svg([row.score for row in account.recent_scores])

    @admin.display(description="Contribution of each measure (latest day)")
    def contributions(self, account: Any) -> SafeString | str:
        latest = account.recent_scores[-1] if account.recent_scores else None
        if latest is None:
            return f"No score in the last {TREND_DAYS} days."
        return contributions_table(latest)

    @admin.display(description="Scores by day")
    def history(self, account: Any) -> SafeString | str:
        if not account.recent_scores:
            return "-"
        return format_html_join(
            ", ",
            "{}: {}",
            ((row.scored_on.isoformat(), row.score) for row in account.recent_scores),
        )

    @admin.action(
        description="Recompute today's health of the selected accounts",
        permissions=["view"],
    )
    def recompute_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        try:
            run = compute_health(account_ids=queryset.values_list("pk", flat=True))
        except InvalidHealthConfiguration as exc:
            messages.error(request, f"Health was not recomputed: {exc}.")
            return
        messages.info(
            request,
            f"Recomputed health for {run.on.isoformat()}: {run.scored} scored, "
            f"{run.unscored} without data.",
        )


def trend_svg(
    scores: list[int], width: int = 120, height: int = 24
) -> SafeString | str:
    """Draw the scores, oldest first, as a line on a 0-100 scale."""
    if not scores:
        return "-"
    step = width / max(len(scores) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{height - score * height / 100:.1f}"
        for index, score in enumerate(scores)
    )
    return format_html(
        '<svg width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="Health scores from {} to {}">'
        '<polyline points="{}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        "</svg>",
        width,
        height,
        width,
        height,
        scores[0],
        scores[-1],
        points,
    )


def contributions_table(score: HealthScore) -> SafeString:
    """Tabulate each stored measure: weight, value, points and the facts behind it."""
    rows = []
    for key, entry in score.measures.items():
        if not isinstance(entry, dict):
            continue
        facts = ", ".join(
            f"{name} {value}"
            for name, value in entry.items()
            if name not in {"label", "available", "weight", "value", "points"}
        )
        value = entry.get("value", "no data") if entry.get("available") else "no data"
        rows.append(
            (
                entry.get("label", key),
                entry.get("weight", "-"),
                value,
                entry.get("points", "-"),
                facts or "-",
            )
        )
    source = "CRM property" if CRM_KEY in score.measures else "weighted measures"
    return format_html(
        "<p>Score {} on {} from {}.</p><table><thead><tr><th>Measure</th>"
        "<th>Weight</th><th>Value (0-100)</th><th>Points</th><th>Facts</th>"
        "</tr></thead><tbody>{}</tbody></table>",
        score.score,
        score.scored_on.isoformat(),
        source,
        format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            rows,
        ),
    )
