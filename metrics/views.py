"""The manager dashboard: outcome comparison and learning engagement, with CSV exports.

Staff only. Every view reads its filters from the query string (``course``,
``as_of``), calls the metrics services and shapes the result.
"""

import csv
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

from courses.models import Course
from metrics.holdouts import FOLLOW_UP_DAYS, HoldoutComparison, holdout_comparison
from metrics.services import (
    TICKET_RATE_DAYS,
    Comparison,
    CourseEngagement,
    learning_engagement,
    outcome_comparison,
)
from metrics.stats import Interval

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


class InvalidFilter(ValueError):
    """A query-string filter that names no course or no valid date."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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


def _course_filter(request: HttpRequest) -> Course | None:
    raw = request.GET.get("course", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidFilter(
            f"Invalid course id {raw!r}: it must be a number. "
            "Pick a course from the list or remove the course filter.",
            status=404,
        )
    course = Course.objects.filter(pk=int(raw)).first()
    if course is None:
        raise InvalidFilter(
            f"Course {raw} was not found. "
            "Pick a course from the list or remove the course filter.",
            status=404,
        )
    return course


def _as_of_filter(request: HttpRequest) -> date | None:
    raw = request.GET.get("as_of", "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidFilter(
            f"Invalid date {raw!r} for as_of: use the form YYYY-MM-DD, "
            "or remove it to compare as of today.",
            status=400,
        ) from None


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
        course = _course_filter(request)
        as_of = _as_of_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=False)

    comparison = outcome_comparison(as_of=as_of, course=course)
    context = {
        "comparison": comparison,
        "engagement": learning_engagement(course),
        "courses": Course.objects.order_by("title", "pk").values("pk", "title"),
        "selected_course": course,
        "as_of_param": request.GET.get("as_of", ""),
        "query_string": request.GET.urlencode(),
        "ticket_rate_days": TICKET_RATE_DAYS,
    }
    return render(request, "metrics/dashboard.html", context)


def _spreadsheet_safe(text: str) -> str:
    """Prefix text a spreadsheet would run as a formula, such as a title "=1+1"."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def _bounds(interval: Interval | None) -> list[float | str]:
    if interval is None:
        return ["", ""]
    return [interval.low, interval.high]


def _blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value


def _csv_response(
    filename: str, header: list[str], rows: Iterable[list]
) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


OUTCOME_HEADER = [
    "as_of",
    "course_id",
    "metric",
    "unit",
    "trained_n",
    "trained_excluded",
    "trained_estimate",
    "trained_ci_low",
    "trained_ci_high",
    "untrained_n",
    "untrained_excluded",
    "untrained_estimate",
    "untrained_ci_low",
    "untrained_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "interval_method",
    "test",
    "p_value",
    "verdict",
]


def _outcome_rows(comparison: Comparison) -> Iterable[list]:
    course_id = comparison.course.pk if comparison.course else ""
    for metric in comparison.metrics:
        difference = metric.difference
        yield [
            comparison.as_of.isoformat(),
            course_id,
            metric.key,
            metric.unit,
            metric.trained.n,
            metric.trained.excluded,
            _blank_if_none(metric.trained.estimate),
            *_bounds(metric.trained.interval),
            metric.untrained.n,
            metric.untrained.excluded,
            _blank_if_none(metric.untrained.estimate),
            *_bounds(metric.untrained.interval),
            _blank_if_none(difference.estimate),
            *_bounds(difference.interval),
            difference.interval_method,
            difference.test,
            _blank_if_none(difference.p_value),
            metric.verdict.value,
        ]


@require_GET
@staff_required
def outcomes_csv(request: HttpRequest) -> HttpResponse:
    try:
        course = _course_filter(request)
        as_of = _as_of_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    comparison = outcome_comparison(as_of=as_of, course=course)
    return _csv_response("outcomes.csv", OUTCOME_HEADER, _outcome_rows(comparison))


ENGAGEMENT_HEADER = [
    "course_id",
    "course",
    "enrolled",
    "completed",
    "active",
    "failed",
    "withdrawn",
    "not_started",
    "completion_rate",
    "completion_ci_low",
    "completion_ci_high",
    "module_order",
    "module",
    "reached",
    "reached_share",
    "stopped",
    "in_progress",
]


def _engagement_rows(report: list[CourseEngagement]) -> Iterable[list]:
    """Yield one row per module, repeating the course columns on each.

    A course without modules gets one row with the module columns blank.
    """
    for course in report:
        course_columns = [
            course.course_id,
            _spreadsheet_safe(course.title),
            course.enrolled,
            course.completed,
            course.active,
            course.failed,
            course.withdrawn,
            course.not_started,
            _blank_if_none(course.completion.value),
            *_bounds(course.completion.interval),
        ]
        if not course.modules:
            yield [*course_columns, "", "", "", "", "", ""]
        for module in course.modules:
            yield [
                *course_columns,
                module.order,
                _spreadsheet_safe(module.title),
                module.reached,
                _blank_if_none(module.reached_share),
                module.stopped,
                module.in_progress,
            ]


@require_GET
@staff_required
def engagement_csv(request: HttpRequest) -> HttpResponse:
    try:
        course = _course_filter(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = learning_engagement(course)
    return _csv_response("engagement.csv", ENGAGEMENT_HEADER, _engagement_rows(report))


def _as_of_instant(request: HttpRequest) -> datetime | None:
    """Read as_of as the end of that UTC day, the instant the comparison uses."""
    day = _as_of_filter(request)
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


HOLDOUT_HEADER = [
    "trigger_id",
    "trigger",
    "subject_type",
    "holdout_percent",
    "awaiting_follow_up",
    "metric",
    "treated_n",
    "treated_events",
    "treated_share",
    "treated_ci_low",
    "treated_ci_high",
    "control_n",
    "control_events",
    "control_share",
    "control_ci_low",
    "control_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "test",
    "p_value",
    "verdict",
]


def _holdout_rows(report: list[HoldoutComparison]) -> Iterable[list]:
    for comparison in report:
        for metric in comparison.metrics:
            difference = metric.difference
            yield [
                comparison.trigger_id,
                _spreadsheet_safe(comparison.slug),
                comparison.subject_type,
                comparison.holdout_percent,
                comparison.awaiting_follow_up,
                metric.key,
                metric.treated.n,
                metric.treated.events,
                _blank_if_none(metric.treated.value),
                *_bounds(metric.treated.interval),
                metric.control.n,
                metric.control.events,
                _blank_if_none(metric.control.value),
                *_bounds(metric.control.interval),
                _blank_if_none(difference.estimate),
                *_bounds(difference.interval),
                difference.test,
                _blank_if_none(difference.p_value),
                metric.verdict.value,
            ]


@require_GET
@staff_required
def holdouts_csv(request: HttpRequest) -> HttpResponse:
    try:
        as_of = _as_of_instant(request)
    except InvalidFilter as error:
        return _invalid_filter_response(request, error, as_csv=True)
    report = holdout_comparison(as_of=as_of)
    return _csv_response("holdouts.csv", HOLDOUT_HEADER, _holdout_rows(report))
