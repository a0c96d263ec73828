"""Read the dashboard's query-string filters, rejecting bad values with a clear message.

``course`` and ``as_of`` narrow the outcome comparison; ``start``, ``end``,
``plan``, ``stage`` and ``segment`` build the Scope that every report
shares; ``rule``, ``course`` and ``path`` define the cohorts of the changes
around training, and ``holdout`` replaces their untrained group with the
subjects a trigger held out.
"""

from dataclasses import dataclass
from datetime import date

from django.http import HttpRequest

from courses.models import Course, LearningPath
from customers.models import Plan
from lifecycle.models import Stage
from metrics.cohorts import Cohort, CohortRule
from metrics.scope import Scope
from triggers.models import FiringOutcome, Trigger


class InvalidFilter(ValueError):
    """A query-string filter that names no course, plan or stage, or no valid date."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DashboardFilters:
    course: Course | None
    as_of: date | None
    scope: Scope


def course_filter(request: HttpRequest) -> Course | None:
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


def date_filter(request: HttpRequest, name: str, default: str) -> date | None:
    """Read the date parameter ``name``.

    ``default`` ends the error message and describes what leaving the date
    out does, such as "to compare as of today".
    """
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidFilter(
            f"Invalid date {raw!r} for {name}: use the form YYYY-MM-DD, "
            f"or remove it {default}.",
            status=400,
        ) from None


def as_of_filter(request: HttpRequest) -> date | None:
    return date_filter(request, "as_of", "to compare as of today")


def _plan_filter(request: HttpRequest) -> str:
    raw = request.GET.get("plan", "").strip()
    if raw and raw not in Plan.values:
        raise InvalidFilter(
            f"Invalid plan {raw!r}: use one of {', '.join(Plan.values)}, "
            "or remove the plan filter.",
            status=400,
        )
    return raw


def _stage_filter(request: HttpRequest) -> str:
    raw = request.GET.get("stage", "").strip()
    if raw and not Stage.objects.filter(slug=raw).exists():
        slugs = ", ".join(Stage.objects.values_list("slug", flat=True))
        raise InvalidFilter(
            f"Lifecycle stage {raw!r} was not found: use one of {slugs}, "
            "or remove the stage filter.",
            status=400,
        )
    return raw


def _segment_filter(request: HttpRequest) -> str:
    # Any industry is valid: a segment with no accounts shows empty tables.
    return request.GET.get("segment", "").strip()


def scope_filter(request: HttpRequest) -> Scope:
    start = date_filter(request, "start", "to start with the first enrollment")
    end = date_filter(request, "end", "to include enrollments up to today")
    try:
        period = Scope(start=start, end=end)
    except ValueError as error:
        raise InvalidFilter(str(error), status=400) from None
    return Scope(
        start=period.start,
        end=period.end,
        plan=_plan_filter(request),
        stage=_stage_filter(request),
        segment=_segment_filter(request),
    )


def _path_filter(request: HttpRequest) -> LearningPath | None:
    raw = request.GET.get("path", "").strip()
    if not raw:
        return None
    path = LearningPath.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if path is None:
        raise InvalidFilter(
            f"Learning path {raw!r} was not found. "
            "Pick a path from the list or remove the path filter.",
            status=404,
        )
    return path


def _rule_filter(request: HttpRequest) -> CohortRule:
    raw = request.GET.get("rule", "").strip() or CohortRule.COMPLETED.value
    if raw not in {rule.value for rule in CohortRule}:
        raise InvalidFilter(
            f"Invalid rule {raw!r}: use one of "
            f"{', '.join(rule.value for rule in CohortRule)}, or remove it to count "
            "completions.",
            status=400,
        )
    return CohortRule(raw)


def cohort_filter(request: HttpRequest) -> Cohort:
    """Read what counts as training: ``rule`` on ``course`` or ``path``."""
    course, path = course_filter(request), _path_filter(request)
    try:
        return Cohort(rule=_rule_filter(request), course=course, path=path)
    except ValueError as error:
        raise InvalidFilter(str(error), status=400) from None


def dashboard_filters(request: HttpRequest) -> DashboardFilters:
    return DashboardFilters(
        course=course_filter(request),
        as_of=as_of_filter(request),
        scope=scope_filter(request),
    )


def control_filter(request: HttpRequest) -> Trigger | None:
    """Read ``holdout``, the trigger whose held-out subjects form the control."""
    raw = request.GET.get("holdout", "").strip()
    if not raw:
        return None
    trigger = Trigger.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if trigger is None:
        raise InvalidFilter(
            f"Trigger {raw!r} was not found. Pick a trigger with a holdout from "
            "the list, or remove the holdout filter to compare with the untrained.",
            status=404,
        )
    held_out = trigger.firings.filter(outcome=FiringOutcome.HELD_OUT)
    if trigger.holdout_percent <= 0 and not held_out.exists():
        raise InvalidFilter(
            f"Trigger {trigger.slug!r} has no holdout, so it has no control group. "
            "Set its holdout percentage, or pick another trigger.",
            status=400,
        )
    return trigger
