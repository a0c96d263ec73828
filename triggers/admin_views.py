"""Admin pages of a trigger: preview, backtest and activation with a backfill choice.

The Trigger admin mounts these pages with trigger_urls() and sends every
switch-on through the activation page, so a CSM always chooses whether the
trigger acts on the subjects that already match. Viewing a preview,
requesting a backtest and viewing its runs need the view permission on
triggers, because a backtest changes nothing but its own run row.
Activating needs the change permission. Each view parses its input, calls
one service and renders.
"""

import logging
from datetime import date
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from conditions import ConditionError
from triggers.activation import activate_trigger, activation_choice
from triggers.backtest import (
    MAX_YEARS,
    STEPS,
    Backtest,
    BacktestPeriodError,
    backtest_csv,
    check_period,
    default_period,
)
from triggers.backtest_runs import (
    SYNC_MAX_EVALUATIONS,
    compute_run,
    create_run,
    evaluations,
    run_result,
)
from triggers.backtest_tasks import queue_backtest
from triggers.models import BacktestRun, BacktestStatus, Trigger
from triggers.preview import preview_trigger

logger = logging.getLogger(__name__)

# Pixel size of the backtest chart's plot area.
CHART_WIDTH = 640
CHART_HEIGHT = 160
# Seconds between reloads of a backtest run's page until it is done or failed.
REFRESH_SECONDS = 3
# Runs listed under the backtest form, newest first.
RECENT_RUNS = 10


def trigger_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """Return the URL patterns of the pages, each wrapped in the admin's login check."""

    def wrap(view: Any) -> Any:
        def wrapper(
            request: HttpRequest, object_id: str, **kwargs: Any
        ) -> HttpResponse:
            return view(model_admin, request, object_id, **kwargs)

        return model_admin.admin_site.admin_view(wrapper)

    return [
        path(
            "<path:object_id>/preview/",
            wrap(preview_view),
            name="triggers_trigger_preview",
        ),
        path(
            "<path:object_id>/backtest/",
            wrap(backtest_view),
            name="triggers_trigger_backtest",
        ),
        path(
            "<path:object_id>/backtest/<int:run_id>/",
            wrap(backtest_run_view),
            name="triggers_trigger_backtest_run",
        ),
        path(
            "<path:object_id>/activate/",
            wrap(activate_view),
            name="triggers_trigger_activate",
        ),
    ]


# -- preview -----------------------------------------------------------------


def preview_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    trigger = _get_trigger(model_admin, request, object_id, "view")
    context = _page_context(model_admin, request, trigger, "Preview")
    try:
        context["preview"] = preview_trigger(trigger)
    except ConditionError as exc:
        context["condition_error"] = _condition_error(exc)
    return TemplateResponse(request, "admin/triggers/trigger/preview.html", context)


# -- backtest ----------------------------------------------------------------


class BacktestForm(forms.Form):
    start = forms.DateField(
        help_text="First day of the period, as YYYY-MM-DD.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    end = forms.DateField(
        help_text=(
            f"Last day of the period, included; today at the latest, and at most "
            f"{MAX_YEARS} years after the start."
        ),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    step = forms.ChoiceField(
        choices=[
            ("day", "every day (like a daily sweep)"),
            ("week", "every seventh day (faster over long periods)"),
        ],
        initial="day",
        help_text="How often the condition is evaluated, at 00:00 of the day.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            try:
                check_period(start, end)
            except BacktestPeriodError as exc:
                raise forms.ValidationError(str(exc), code="invalid_period") from exc
        return cleaned


def backtest_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """Offer the backtest form and the latest runs; a valid POST starts a run."""
    trigger = _get_trigger(model_admin, request, object_id, "view")
    context = _page_context(model_admin, request, trigger, "Backtest")

    if request.method == "POST":
        form = BacktestForm(request.POST)
    else:
        start, end = default_period()
        form = BacktestForm(initial={"start": start, "end": end, "step": "day"})
    context["form"] = form
    if not form.is_bound or not form.is_valid():
        return _backtest_page(request, trigger, context)

    data = form.cleaned_data
    try:
        run = _start_run(request, trigger, data["start"], data["end"], data["step"])
    except ConditionError as exc:
        context["condition_error"] = _condition_error(exc)
        return _backtest_page(request, trigger, context)
    except BacktestPeriodError as exc:
        form.add_error(None, str(exc))
        return _backtest_page(request, trigger, context)
    return HttpResponseRedirect(_run_url(run))


def backtest_run_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, run_id: int
) -> HttpResponse:
    """Show one run: its status while queued or running, then its weeks or CSV."""
    trigger = _get_trigger(model_admin, request, object_id, "view")
    run = BacktestRun.objects.filter(trigger=trigger, pk=run_id).first()
    if run is None:
        raise Http404(f"Trigger {trigger.slug!r} has no backtest run {run_id}.")

    context = _page_context(model_admin, request, trigger, "Backtest")
    context["run"] = run
    context["form"] = BacktestForm(
        initial={"start": run.start, "end": run.end, "step": run.step}
    )
    if not run.is_finished:
        context["refresh_seconds"] = REFRESH_SECONDS
    if run.status == BacktestStatus.DONE:
        result = run_result(run)
        if request.GET.get("format") == "csv":
            return _csv_response(trigger, result)
        context["result"] = result
        context["chart"] = backtest_chart(result)
        context["csv_query"] = "format=csv"
    return _backtest_page(request, trigger, context)


def _start_run(
    request: HttpRequest, trigger: Trigger, start: date, end: date, step: str
) -> BacktestRun:
    """Store a run, then compute it now when short or queue it on commit."""
    with transaction.atomic():
        run = create_run(trigger, request.user, start, end, step)
        queued = evaluations(start, end, step) > SYNC_MAX_EVALUATIONS
        if queued:
            queue_backtest(run)
    if not queued:
        run = compute_run(run.pk)
    return run


def backtest_chart(result: Backtest) -> dict[str, Any]:
    """Lay out one bar per week for the inline SVG chart of a backtest."""
    peak = max([week.would_fire for week in result.weeks] + [1])
    slot = CHART_WIDTH / max(len(result.weeks), 1)
    bars = []
    for index, week in enumerate(result.weeks):
        height = round(CHART_HEIGHT * week.would_fire / peak, 1)
        bars.append(
            {
                "x": round(index * slot + slot * 0.1, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "width": round(slot * 0.8, 1),
                "height": height,
                "week": week,
            }
        )
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "peak": peak, "bars": bars}


def _backtest_page(
    request: HttpRequest, trigger: Trigger, context: dict[str, Any]
) -> HttpResponse:
    context["steps"] = STEPS
    context["runs"] = trigger.backtest_runs.select_related("requested_by")[:RECENT_RUNS]
    return TemplateResponse(request, "admin/triggers/trigger/backtest.html", context)


def _run_url(run: BacktestRun) -> str:
    return reverse("admin:triggers_trigger_backtest_run", args=[run.trigger_id, run.pk])


def _csv_response(trigger: Trigger, result: Backtest) -> HttpResponse:
    response = HttpResponse(backtest_csv(result), content_type="text/csv")
    filename = (
        f"backtest-{trigger.slug}-{result.start.isoformat()}-{result.end.isoformat()}"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


# -- activation --------------------------------------------------------------

BACKFILL = "backfill"
FROM_NOW_ON = "from_now_on"


class ActivationForm(forms.Form):
    # No initial value: the CSM must pick one, so no trigger is switched on
    # without a decision about the subjects who already match.
    choice = forms.ChoiceField(
        choices=[
            (BACKFILL, "Backfill: act on the subjects who already match"),
            (FROM_NOW_ON, "From now on: act only on subjects who start matching later"),
        ],
        widget=forms.RadioSelect,
        error_messages={
            "required": (
                "Choose whether the trigger acts on the subjects who already match."
            )
        },
    )


def activate_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    trigger = _get_trigger(model_admin, request, object_id, "change")
    change_url = _change_url(trigger)
    if trigger.is_active:
        messages.info(request, f"Trigger {trigger.name!r} is already active.")
        return HttpResponseRedirect(change_url)

    context = _page_context(model_admin, request, trigger, "Activate")
    form = ActivationForm(request.POST if request.method == "POST" else None)
    context["form"] = form
    try:
        context["choice"] = activation_choice(trigger)
    except ConditionError as exc:
        context["condition_error"] = _condition_error(exc)
        return _activation_page(request, context)

    if request.method != "POST" or not form.is_valid():
        return _activation_page(request, context)

    backfill = form.cleaned_data["choice"] == BACKFILL
    result = activate_trigger(trigger, backfill=backfill)
    logger.info(
        "User %s activated trigger %s, backfill=%s",
        request.user.pk,
        trigger.slug,
        backfill,
    )
    messages.success(request, _activation_message(trigger, result.activated, backfill))
    if result.baseline_recorded:
        messages.info(
            request,
            f"Recorded {result.baseline_recorded} subjects who already matched as "
            "baseline firings; they get no action for their current occurrence.",
        )
    return HttpResponseRedirect(change_url)


def _activation_page(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    return TemplateResponse(request, "admin/triggers/trigger/activate.html", context)


def _activation_message(trigger: Trigger, activated: bool, backfill: bool) -> str:
    if not activated:
        return f"Trigger {trigger.name!r} was already active; nothing changed."
    if backfill:
        return (
            f"Activated {trigger.name!r} with backfill: the next sweep acts on the "
            "subjects who match and have not fired for their current occurrence."
        )
    return (
        f"Activated {trigger.name!r} from now on: only subjects who start matching "
        "later, or reach a new occurrence, are acted on."
    )


# -- switching on from the change form ---------------------------------------


def hold_activation(trigger: Trigger, form: forms.ModelForm, change: bool) -> None:
    """Save a trigger that the form switches on as inactive, pending activation.

    Ticking "is active" on the change form does not activate the trigger.
    The trigger is saved off, and activation_redirect() sends the CSM to the
    activation page to choose about backfill.
    """
    switching_on = trigger.is_active and (
        not change or "is_active" in form.changed_data
    )
    if switching_on:
        trigger.is_active = False


def activation_redirect(request: HttpRequest, trigger: Trigger) -> HttpResponse | None:
    """Return a redirect to the activation page when a save held an activation."""
    if trigger.is_active or not request.POST.get("is_active"):
        return None
    if "_popup" in request.POST:
        return None
    messages.warning(
        request,
        f"Saved {trigger.name!r} as inactive. Choose below whether it acts on the "
        "subjects who already match, then activate it.",
    )
    return HttpResponseRedirect(
        reverse("admin:triggers_trigger_activate", args=[trigger.pk])
    )


def activate_selected(
    model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Trigger]
) -> HttpResponse | None:
    """Send the CSM to the activation page of the one selected trigger.

    Each trigger needs its own decision about backfill, made with its own
    counts of matching subjects, so the action takes one trigger at a time.
    """
    triggers = list(queryset[:2])
    if len(triggers) != 1:
        model_admin.message_user(
            request,
            "Select exactly one trigger to activate: each trigger needs its own "
            "choice about the subjects who already match.",
            messages.ERROR,
        )
        return None
    return HttpResponseRedirect(
        reverse("admin:triggers_trigger_activate", args=[triggers[0].pk])
    )


# -- shared ------------------------------------------------------------------


def _get_trigger(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, action: str
) -> Trigger:
    # The permission on triggers in general is checked before the lookup,
    # so a user without it gets 403 for every id and cannot learn which
    # ids exist from 404s.
    if not _allowed(model_admin, request, action, None):
        raise PermissionDenied(f"You may not {action} triggers.")
    trigger = model_admin.get_object(request, object_id)
    if trigger is None:
        raise Http404(f"No trigger with id {object_id!r}.")
    if not _allowed(model_admin, request, action, trigger):
        raise PermissionDenied(f"You may not {action} trigger {trigger.slug!r}.")
    return trigger


def _allowed(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    action: str,
    trigger: Trigger | None,
) -> bool:
    if action == "change":
        return model_admin.has_change_permission(request, trigger)
    return model_admin.has_view_permission(request, trigger)


def _page_context(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    trigger: Trigger,
    title: str,
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "title": f"{title}: {trigger.name}",
        "opts": Trigger._meta,
        "original": trigger,
        "trigger": trigger,
        "change_url": _change_url(trigger),
        "has_change_permission": model_admin.has_change_permission(request, trigger),
        "now": timezone.now(),
    }


def _change_url(trigger: Trigger) -> str:
    return reverse("admin:triggers_trigger_change", args=[trigger.pk])


def _condition_error(exc: ConditionError) -> str:
    return (
        f"Invalid condition at {exc.path}: {exc.message}. Fix the condition on the "
        "trigger's page first."
    )
