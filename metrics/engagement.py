"""Learning engagement: completion, the module funnel, views, time and scores.

Every figure is an aggregate query over enrollments and lesson progress, or
over their refreshed facts (metrics.facts), so the report runs eight queries,
or six over the facts, whatever the number of learners. The score
histograms come from metrics.scores. docs/metrics.md and docs/dashboards.md
define each figure.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import (
    Count,
    F,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Greatest
from django.utils import timezone

from courses.models import (
    Certificate,
    Course,
    Enrollment,
    EnrollmentStatus,
    LessonProgress,
    Module,
)
from metrics import scores
from metrics.models import (
    EnrollmentFact,
    FactRefresh,
    ModuleActivityFact,
)
from metrics.scope import EVERYTHING, Scope
from metrics.scores import EMPTY_HISTOGRAM, ScoreHistogram, histograms_from_counts
from metrics.stats import ProportionEstimate, estimate_proportion


@dataclass(frozen=True)
class ModuleActivity:
    """Lesson progress of one module: views, repeat views and time spent.

    ``viewers`` counts enrollments that viewed a lesson of the module,
    ``repeat_views`` the views of a lesson beyond an enrollment's first, and
    ``repeat_viewers`` the enrollments that opened one lesson of the module
    more than once. ``seconds`` and ``timed_learners`` cover only progress
    rows with time recorded.
    """

    viewers: int = 0
    views: int = 0
    repeat_views: int = 0
    repeat_viewers: int = 0
    seconds: int = 0
    timed_learners: int = 0

    @property
    def mean_minutes(self) -> float | None:
        """Mean minutes per learner with time recorded, or None when none has."""
        if not self.timed_learners:
            return None
        return self.seconds / self.timed_learners / 60


@dataclass(frozen=True)
class ModuleFunnel:
    """How many enrollments of a course reached a module and how many stopped in it.

    ``reached`` counts completed enrollments plus those whose furthest lesson
    is in this module or a later one. ``stopped`` counts failed and withdrawn
    enrollments whose furthest lesson is in this module, and ``in_progress``
    counts active ones there.
    """

    module_id: int
    title: str
    order: int
    reached: int
    reached_share: float | None
    stopped: int
    in_progress: int
    activity: ModuleActivity = field(default_factory=ModuleActivity)
    # Set on the module of the course where the most enrollments stopped.
    is_largest_drop_off: bool = False


@dataclass(frozen=True)
class CertificateCounts:
    """Certificates issued in the period; of those, how many are revoked or expired."""

    issued: int = 0
    revoked: int = 0
    expired: int = 0


@dataclass(frozen=True)
class CourseEngagement:
    """Enrollment counts by status, the completion rate, the funnel and scores."""

    course_id: int
    title: str
    slug: str
    enrolled: int
    completed: int
    active: int
    failed: int
    withdrawn: int
    # Enrollments not completed and with no furthest lesson recorded.
    not_started: int
    completion: ProportionEstimate
    modules: list[ModuleFunnel]
    # Scores of whole enrollments (Enrollment.score) and of lessons.
    course_scores: ScoreHistogram
    lesson_scores: ScoreHistogram
    certificates: CertificateCounts

    @property
    def stopped(self) -> int:
        return sum(module.stopped for module in self.modules)

    @property
    def largest_drop_off(self) -> ModuleFunnel | None:
        return next((m for m in self.modules if m.is_largest_drop_off), None)

    @property
    def largest_drop_off_share(self) -> float | None:
        """Return the share of stopped enrollments that stopped in that module."""
        module = self.largest_drop_off
        if module is None:
            return None
        return module.stopped / self.stopped

    @property
    def time_recorded(self) -> bool:
        return any(module.activity.timed_learners for module in self.modules)


def _module_funnel(
    modules: list[Mapping[str, Any]],
    counts: dict[tuple[int | None, str], int],
    enrolled: int,
) -> tuple[list[ModuleFunnel], int]:
    """Build a course's funnel from enrollment counts per (furthest module, status).

    Returns the funnel and the number of not-started enrollments: those not
    completed whose furthest lesson is missing or outside the course's modules.
    """
    completed = sum(
        count
        for (_, status), count in counts.items()
        if status == EnrollmentStatus.COMPLETED
    )
    module_ids = {module["pk"] for module in modules}
    not_started = sum(
        count
        for (module_id, status), count in counts.items()
        if status != EnrollmentStatus.COMPLETED and module_id not in module_ids
    )

    # Walk from the last module to the first, so that "reached" accumulates
    # every enrollment whose furthest lesson is in this module or a later one.
    funnel: list[ModuleFunnel] = []
    reached = completed
    for module in reversed(modules):
        stopped = counts.get((module["pk"], EnrollmentStatus.FAILED), 0) + counts.get(
            (module["pk"], EnrollmentStatus.WITHDRAWN), 0
        )
        in_progress = counts.get((module["pk"], EnrollmentStatus.ACTIVE), 0)
        reached += stopped + in_progress
        funnel.append(
            ModuleFunnel(
                module_id=module["pk"],
                title=module["title"],
                order=module["order"],
                reached=reached,
                reached_share=reached / enrolled if enrolled else None,
                stopped=stopped,
                in_progress=in_progress,
            )
        )
    funnel.reverse()
    return funnel, not_started


def _mark_largest_drop_off(funnel: list[ModuleFunnel]) -> list[ModuleFunnel]:
    """Flag the module where the most enrollments stopped; the earliest on a tie."""
    max_stopped = max((module.stopped for module in funnel), default=0)
    if max_stopped == 0:
        return funnel
    index = next(i for i, module in enumerate(funnel) if module.stopped == max_stopped)
    funnel[index] = replace(funnel[index], is_largest_drop_off=True)
    return funnel


def _activity_by_module(
    courses: QuerySet[Course], scope: Scope
) -> dict[int, ModuleActivity]:
    # The annotations get names unlike the model's fields, because an F()
    # of an annotated name would read the aggregate, not the column.
    rows = (
        LessonProgress.objects.filter(
            scope.enrollments("enrollment__"), enrollment__course__in=courses
        )
        .values("lesson__module_id")
        .annotate(
            viewer_count=Count("enrollment", distinct=True, filter=Q(views__gt=0)),
            view_count=Sum("views"),
            repeat_view_count=Sum(Greatest(F("views") - 1, Value(0))),
            repeat_viewer_count=Count(
                "enrollment", distinct=True, filter=Q(views__gt=1)
            ),
            second_count=Sum("time_spent_seconds"),
            timed_count=Count(
                "enrollment", distinct=True, filter=Q(time_spent_seconds__gt=0)
            ),
        )
        .order_by()
    )
    return _activities(rows, "lesson__module_id")


def _stored_activity_by_module(
    courses: QuerySet[Course], scope: Scope
) -> dict[int, ModuleActivity]:
    """Return what _activity_by_module returns, from the refreshed per-module rows."""
    rows = (
        ModuleActivityFact.objects.filter(
            scope.accounts("account__"),
            scope.in_period("enrolled_at"),
            course__in=courses,
        )
        .values("module_id")
        .annotate(
            viewer_count=Count("pk", filter=Q(viewed=True)),
            view_count=Sum("views"),
            repeat_view_count=Sum("repeat_views"),
            repeat_viewer_count=Count("pk", filter=Q(repeated=True)),
            second_count=Sum("seconds"),
            timed_count=Count("pk", filter=Q(timed=True)),
        )
        .order_by()
    )
    return _activities(rows, "module_id")


def _activities(
    rows: Iterable[Mapping[str, Any]], module_key: str
) -> dict[int, ModuleActivity]:
    """Build each module's activity from a row of the aggregates named below."""
    return {
        row[module_key]: ModuleActivity(
            viewers=row["viewer_count"],
            views=row["view_count"] or 0,
            repeat_views=row["repeat_view_count"] or 0,
            repeat_viewers=row["repeat_viewer_count"],
            seconds=row["second_count"] or 0,
            timed_learners=row["timed_count"],
        )
        for row in rows
    }


def _certificates(
    courses: QuerySet[Course], scope: Scope
) -> dict[int, CertificateCounts]:
    """Count certificates issued in the period to learners of matching accounts.

    Revoked counts those revoked since; expired counts the unrevoked ones
    whose expiry has passed now.
    """
    now = timezone.now()
    rows = (
        Certificate.objects.filter(
            scope.accounts("enrollment__contact__account__"),
            scope.in_period("issued_at"),
            enrollment__course__in=courses,
        )
        .values("enrollment__course_id")
        .annotate(
            issued=Count("pk"),
            revoked=Count("pk", filter=Q(revoked_at__isnull=False)),
            expired=Count("pk", filter=Q(revoked_at__isnull=True, expires_at__lte=now)),
        )
        .order_by()
    )
    return {
        row["enrollment__course_id"]: CertificateCounts(
            row["issued"], row["revoked"], row["expired"]
        )
        for row in rows
    }


# Enrollment counts per course: "enrolled" and one entry per status.
Totals = dict[int, dict[str, int]]
# Enrollment counts per course, keyed by (furthest module, status).
FunnelCounts = dict[int, dict[tuple[int | None, str], int]]


def _enrollment_counts(
    courses: QuerySet[Course], scope: Scope
) -> tuple[Totals, FunnelCounts, dict[int, ScoreHistogram]]:
    """Count the enrollments in scope per course, status and furthest module.

    Returns the totals, the funnel counts and the course score histograms,
    in three aggregate queries over the enrollments.
    """
    in_scope = scope.enrollments("enrollments__")
    totals: Totals = {
        row["pk"]: row
        for row in courses.annotate(
            enrolled=Count("enrollments", filter=in_scope),
            **{
                status: Count(
                    "enrollments", filter=in_scope & Q(enrollments__status=status)
                )
                for status in EnrollmentStatus.values
            },
        ).values("pk", "enrolled", *EnrollmentStatus.values)
    }

    enrollments = Enrollment.objects.filter(scope.enrollments(), course__in=courses)
    funnel: FunnelCounts = defaultdict(dict)
    for row in (
        enrollments.values("course_id", "furthest_lesson__module_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        key = (row["furthest_lesson__module_id"], row["status"])
        funnel[row["course_id"]][key] = row["count"]
    return totals, funnel, scores.course_scores(courses, scope)


def _stored_enrollment_counts(
    courses: QuerySet[Course], scope: Scope
) -> tuple[Totals, FunnelCounts, dict[int, ScoreHistogram]]:
    """Return what _enrollment_counts returns, from one scan of the refreshed rows."""
    rows = (
        EnrollmentFact.objects.filter(
            scope.accounts("account__"),
            scope.in_period("enrolled_at"),
            course__in=courses,
        )
        .values("course_id", "furthest_module_id", "status", "score_bin")
        .annotate(count=Count("pk"))
        .order_by()
    )
    totals: Totals = defaultdict(lambda: defaultdict(int))
    funnel: FunnelCounts = defaultdict(dict)
    score_counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        course_id, count = row["course_id"], row["count"]
        totals[course_id]["enrolled"] += count
        totals[course_id][row["status"]] += count
        key = (row["furthest_module_id"], row["status"])
        funnel[course_id][key] = funnel[course_id].get(key, 0) + count
        if row["score_bin"] is not None:
            score_counts[course_id][row["score_bin"]] += count
    return totals, funnel, histograms_from_counts(score_counts)


def learning_engagement(
    course: Course | None = None,
    scope: Scope = EVERYTHING,
    precomputed: bool | None = None,
) -> list[CourseEngagement]:
    """Return completion, funnel, activity and scores of every course, or of ``course``.

    Only enrollments that ``scope`` selects count, which are those made in
    its period by contacts of accounts with its plan and stage. Certificates
    count when issued in its period. Runs eight queries whatever the number
    of enrollments. With ``precomputed`` (by default, once the facts were
    refreshed) the enrollment counts, course scores, lesson activity and
    lesson scores are read from metrics.facts' rows, as of their last
    refresh, and it runs six.
    """
    if precomputed is None:
        precomputed = FactRefresh.last() is not None
    courses = (
        Course.objects.all() if course is None else Course.objects.filter(pk=course.pk)
    )

    modules_by_course: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for module in (
        Module.objects.filter(course__in=courses)
        .order_by("course", "order", "pk")
        .values("pk", "course_id", "title", "order")
    ):
        modules_by_course[module["course_id"]].append(module)

    if precomputed:
        totals, counts_by_course, course_scores = _stored_enrollment_counts(
            courses, scope
        )
        activity = _stored_activity_by_module(courses, scope)
        lesson_scores = scores.stored_lesson_scores(courses, scope)
    else:
        totals, counts_by_course, course_scores = _enrollment_counts(courses, scope)
        activity = _activity_by_module(courses, scope)
        lesson_scores = scores.lesson_scores(courses, scope)
    certificates = _certificates(courses, scope)

    report = []
    for row in courses.order_by("title", "pk").values("pk", "title", "slug"):
        total = totals.get(row["pk"], {})
        enrolled = total.get("enrolled", 0)
        completed = total.get(EnrollmentStatus.COMPLETED, 0)
        funnel, not_started = _module_funnel(
            modules_by_course[row["pk"]], counts_by_course.get(row["pk"], {}), enrolled
        )
        funnel = [
            replace(module, activity=activity.get(module.module_id, ModuleActivity()))
            for module in funnel
        ]
        report.append(
            CourseEngagement(
                course_id=row["pk"],
                title=row["title"],
                slug=row["slug"],
                enrolled=enrolled,
                completed=completed,
                active=total.get(EnrollmentStatus.ACTIVE, 0),
                failed=total.get(EnrollmentStatus.FAILED, 0),
                withdrawn=total.get(EnrollmentStatus.WITHDRAWN, 0),
                not_started=not_started,
                completion=estimate_proportion(completed, enrolled),
                modules=_mark_largest_drop_off(funnel),
                course_scores=course_scores.get(row["pk"], EMPTY_HISTOGRAM),
                lesson_scores=lesson_scores.get(row["pk"], EMPTY_HISTOGRAM),
                certificates=certificates.get(row["pk"], CertificateCounts()),
            )
        )
    return report
