"""The manager dashboard: outcomes, engagement and holdouts, with CSV downloads.

Staff only. Every view reads its filters from the query string (see
metrics.filters), calls the metrics services and shapes the result.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from courses.models import Course, LearningPath
from customers.models import Plan
from lifecycle.models import Stage
from metrics.changes import OutcomeChanges, outcome_changes
from metrics.charts import change_charts, engagement_charts, impact_charts
from metrics.cohorts import (
    DAYS_AFTER,
    DAYS_BEFORE,
    MIN_UNTRAINED_SAMPLE,
    SAMPLE_LIMIT,
    Cohort,
    CohortRule,
)
from metrics.exports import (
    CHANGES_HEADER,
    ENGAGEMENT_HEADER,
    HOLDOUT_HEADER,
    HOLDOUT_OUTCOME_HEADER,
    IMPACT_HEADER,
    OUTCOME_HEADER,
    SCORES_HEADER,
    change_rows,
    csv_text,
    engagement_rows,
    holdout_outcome_rows,
    holdout_rows,
    impact_rows,
    outcome_rows,
    score_rows,
)
from metrics.filters import (
    DashboardFilters,
    InvalidFilter,
    as_of_filter,
    cohort_filter,
    control_filter,
    course_filter,
    dashboard_filters,
    scope_filter,
)
from metrics.holdout_outcomes import HoldoutOutcomes, holdout_outcomes
from metrics.holdouts import FOLLOW_UP_DAYS, holdout_comparison
from metrics.impact import ImpactReport, impact_report
from metrics.models import FactRefresh
from metrics.report_cache import cached_report
from metrics.scope import Scope
from metrics.services import (
    TICKET_RATE_DAYS,
    Comparison,
    CourseEngagement,
    learning_engagement,
    outcome_comparison,
    score_bin_labels,
)
from metrics.side_by_side import reports_side_by_side, start
from metrics.sql import short_queries
from triggers.models import Trigger

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def _pk(instance: Any) -> int | None:
    return None if instance is None else instance.pk


# Each report is cached per filter set (metrics.report_cache), so the page
# and its CSV downloads within a minute share one computation.


def _comparison(filters: DashboardFilters, precomputed: bool) -> Comparison:
    return cached_report(
        "outcomes",
        (_pk(filters.course), filters.as_of, filters.scope, precomputed),
        lambda: outcome_comparison(
            filters.as_of, filters.course, filters.scope, precomputed
        ),
    )


def _changes(
    cohort: Cohort,
    scope: Scope,
    as_of: date | None,
    control: Trigger | None,
    precomputed: bool,
) -> OutcomeChanges:
    key = (cohort.rule, _pk(cohort.course), _pk(cohort.path), scope, as_of)
    return cached_report(
        "changes",
        (*key, _pk(control), precomputed),
        lambda: outcome_changes(cohort, scope, as_of, control, precomputed),
    )


def _holdout_outcomes(
    control: Trigger, scope: Scope, as_of: date | None
) -> HoldoutOutcomes:
    return cached_report(
        "holdout-outcomes",
        (control.pk, scope, as_of),
        lambda: holdout_outcomes(control, scope, as_of),
    )


def _engagement(
    course: Course | None, scope: Scope, precomputed: bool
) -> list[CourseEngagement]:
    return cached_report(
        "engagement",
        (_pk(course), scope, precomputed),
        lambda: learning_engagement(course, scope, precomputed),
    )


def _impact(scope: Scope, precomputed: bool) -> ImpactReport:
    return cached_report(
        "impact", (scope, precomputed), lambda: impact_report(scope, precomputed)
    )


def _precomputed() -> tuple[FactRefresh | None, bool]:
    """Return the last refresh of the facts, and whether reports may read them."""
    refresh = FactRefresh.last()
    return refresh, refresh is not None


def staff_required(view: View) -> View:
    """Send anonymous users to the admin sign-in and reject signed-in non-staff.

    The admin sign-in is used because the learner portal's sign-in is by
    emailed link and does not serve staff accounts.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not request.user.is_staff:
            raise PermissionDenied("The dashboard is for staff users only.")
        return view(request, *args, **kwargs)

    return wrapper


def _invalid_filter_response(
    request: HttpRequest, error: InvalidFilter, as_csv: bool
) -> HttpResponse:
    logger.info("Rejected dashboard filter %s: %s", request.GET.urlencode(), error)
    if as_csv:
        return HttpResponse(
            str(error), status=error.status, content_type="text/plain; charset=utf-8"
        )
    return render(
        request,
        "metrics/invalid_filter.html",
        {"message": str(error)},
        status=error.status,
    )


@require_GET
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    try:
        filters = dashboard_filters(request)
        cohort = cohort_filter(request)
        control = control_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=False)

    scope = filters.scope
    fact_refresh, precomputed = _precomputed()
    # The sections are independent, so the other three are computed on
    # threads of their own while this one computes the slowest.
    with reports_side_by_side():
        pending_engagement = start(
            lambda: _engagement(filters.course, scope, precomputed)
        )
        pending_impact = start(lambda: _impact(scope, precomputed))
        pending_comparison = start(lambda: _comparison(filters, precomputed))
        with short_queries():
            changes = _changes(cohort, scope, filters.as_of, control, precomputed)
        engagement = pending_engagement.result()
        impact = pending_impact.result()
        comparison = pending_comparison.result()
    charts = engagement_charts(engagement) | impact_charts(impact)
    context = {
        "fact_refresh": fact_refresh,
        "comparison": comparison,
        "holdout_outcomes": _holdout_outcomes(control, scope, filters.as_of)
        if control is not None
        else None,
        "changes": changes,
        "changes_metrics": [
            {
                "label": metric.label,
                "unit": metric.unit,
                "groups": (metric.trained, metric.untrained),
                "difference": metric.difference,
                "verdict": metric.verdict,
            }
            for metric in (
                changes.usage,
                changes.health,
                changes.tickets,
                changes.expansion_change,
            )
        ],
        "expansion_groups": (changes.expansion.trained, changes.expansion.untrained),
        "group_labels": ("Treated", "Held out")
        if changes.is_causal
        else ("Trained", "Untrained"),
        "days_before": DAYS_BEFORE,
        "days_after": DAYS_AFTER,
        "sample_limit": SAMPLE_LIMIT,
        "min_untrained_sample": MIN_UNTRAINED_SAMPLE,
        "rules": [rule.value for rule in CohortRule],
        "paths": LearningPath.objects.order_by("title", "pk").values("pk", "title"),
        "holdout_triggers": Trigger.objects.filter(holdout_percent__gt=0)
        .order_by("name", "pk")
        .values("pk", "name"),
        "engagement": engagement,
        "impact": impact,
        "charts": charts | change_charts(changes),
        "score_bins": score_bin_labels(),
        "courses": Course.objects.order_by("title", "pk").values("pk", "title"),
        "plans": Plan.values,
        "stages": Stage.objects.order_by("order").values("slug", "name"),
        "selected_course": filters.course,
        "scope": scope,
        "as_of_param": request.GET.get("as_of", ""),
        "query_string": request.GET.urlencode(),
        "ticket_rate_days": TICKET_RATE_DAYS,
    }
    return render(request, "metrics/dashboard.html", context)


def _csv_response(
    filename: str, header: list[str], rows: Iterable[list]
) -> HttpResponse:
    response = HttpResponse(
        csv_text(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@staff_required
def outcomes_csv(request: HttpRequest) -> HttpResponse:
    try:
        filters = dashboard_filters(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    comparison = _comparison(filters, _precomputed()[1])
    return _csv_response("outcomes.csv", OUTCOME_HEADER, outcome_rows(comparison))


@require_GET
@staff_required
def holdout_outcomes_csv(request: HttpRequest) -> HttpResponse:
    try:
        filters = dashboard_filters(request)
        control = control_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    if control is None:
        return HttpResponse(
            "The holdout filter is missing. Add holdout=<trigger id> of a "
            "trigger with a holdout.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    report = _holdout_outcomes(control, filters.scope, filters.as_of)
    rows = holdout_outcome_rows(report)
    return _csv_response("holdout-outcomes.csv", HOLDOUT_OUTCOME_HEADER, rows)


@require_GET
@staff_required
def changes_csv(request: HttpRequest) -> HttpResponse:
    try:
        filters = dashboard_filters(request)
        cohort = cohort_filter(request)
        control = control_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = _changes(cohort, filters.scope, filters.as_of, control, _precomputed()[1])
    return _csv_response("changes.csv", CHANGES_HEADER, change_rows(report))


def _engagement_download(
    request: HttpRequest,
    filename: str,
    header: list[str],
    rows: Callable[[list[CourseEngagement]], Iterable[list]],
) -> HttpResponse:
    try:
        course = course_filter(request)
        scope = scope_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = _engagement(course, scope, _precomputed()[1])
    return _csv_response(filename, header, rows(report))


@require_GET
@staff_required
def engagement_csv(request: HttpRequest) -> HttpResponse:
    return _engagement_download(
        request, "engagement.csv", ENGAGEMENT_HEADER, engagement_rows
    )


@require_GET
@staff_required
def scores_csv(request: HttpRequest) -> HttpResponse:
    return _engagement_download(request, "scores.csv", SCORES_HEADER, score_rows)


@require_GET
@staff_required
def impact_csv(request: HttpRequest) -> HttpResponse:
    try:
        scope = scope_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = _impact(scope, _precomputed()[1])
    return _csv_response("impact.csv", IMPACT_HEADER, impact_rows(report))


def _as_of_instant(request: HttpRequest) -> datetime | None:
    """Read as_of as the end of that UTC day, the instant the comparison uses."""
    day = as_of_filter(request)
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=UTC)


@require_GET
@staff_required
def holdouts(request: HttpRequest) -> HttpResponse:
    try:
        as_of = _as_of_instant(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=False)
    context = {
        "comparisons": holdout_comparison(as_of=as_of),
        "follow_up_days": FOLLOW_UP_DAYS,
        "as_of_param": request.GET.get("as_of", ""),
        "query_string": request.GET.urlencode(),
    }
    return render(request, "metrics/holdouts.html", context)


@require_GET
@staff_required
def holdouts_csv(request: HttpRequest) -> HttpResponse:
    try:
        as_of = _as_of_instant(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = holdout_comparison(as_of=as_of)
    return _csv_response("holdouts.csv", HOLDOUT_HEADER, holdout_rows(report))
