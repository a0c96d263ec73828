"""Quizzes and exams that a learner due for recertification must pass again.

A version whose snapshot changes what a quiz or exam tests (courses.snapshots)
takes back earlier passes of it, for learners marked for recertification:
an attempt counts only if it started at or after that version's
publication. For an exam it must have passed, and for a quiz any
submission counts, as when completing the lesson. Only the quizzes and
exams the completion rule counts are retaken. Learners who are not due
for recertification keep every pass.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from courses.models import (
    Attempt,
    AttemptStatus,
    CompletionRule,
    Course,
    CourseVersion,
    Enrollment,
    Lesson,
    LessonKind,
)
from courses.snapshots import RETAKEN_KINDS, Snapshot, retake_times

# Lesson id -> the time from which an attempt counts again.
Retakes = dict[int, datetime]

# The attempts that complete a quiz or exam: an exam passed, a quiz submitted.
COUNTING_ATTEMPT = Q(passed=True) | Q(
    lesson__kind=LessonKind.QUIZ, status=AttemptStatus.SUBMITTED
)


def lessons_counted(course_id: int, rule: str) -> QuerySet[Lesson]:
    """Return the course's lessons that its completion rule counts."""
    lessons = Lesson.objects.filter(module__course_id=course_id)
    if rule == CompletionRule.REQUIRED_LESSONS:
        return lessons.filter(is_required=True)
    if rule == CompletionRule.PASS_EXAM:
        return lessons.filter(kind=LessonKind.EXAM)
    return lessons


def rule_counts(lesson: Lesson, rule: str) -> bool:
    """Return whether the completion rule counts the lesson, as lessons_counted does."""
    if rule == CompletionRule.REQUIRED_LESSONS:
        return lesson.is_required
    if rule == CompletionRule.PASS_EXAM:
        return lesson.kind == LessonKind.EXAM
    return True


def counted_by_own_rule(prefix: str = "") -> Q:
    """Return a filter for lessons that their own course's completion rule counts.

    It selects what lessons_counted does, for lessons of many courses in one
    query. prefix is the path from the filtered model to the lesson, such as
    "lesson__".
    """
    rule = f"{prefix}module__course__completion_rule"
    required = Q(
        **{rule: CompletionRule.REQUIRED_LESSONS, f"{prefix}is_required": True}
    )
    exams = Q(**{rule: CompletionRule.PASS_EXAM, f"{prefix}kind": LessonKind.EXAM})
    every = ~Q(
        **{f"{rule}__in": [CompletionRule.REQUIRED_LESSONS, CompletionRule.PASS_EXAM]}
    )
    return required | exams | every


def stored_versions(course_id: int) -> list[tuple[datetime, Snapshot | None]]:
    """Return each published version's time and snapshot, in version order."""
    return list(
        CourseVersion.objects.filter(course_id=course_id)
        .order_by("number")
        .values_list("published_at", "snapshot")
    )


def counted_retakes(
    course_id: int, rule: str, versions: Iterable[tuple[datetime, Snapshot | None]]
) -> Retakes:
    """Return the quizzes and exams counted by the rule that a version changed.

    Each maps to the publication of the latest version that changed it. A
    lesson that is no longer a quiz or exam, or that the rule no longer
    counts, is left out.
    """
    changed = retake_times(versions)
    if not changed:
        return {}
    current = lessons_counted(course_id, rule).filter(
        pk__in=changed, kind__in=RETAKEN_KINDS
    )
    return {pk: changed[pk] for pk in current.values_list("pk", flat=True)}


def course_retakes(course_id: int) -> Retakes:
    """Return counted_retakes for the course's published versions. Three queries."""
    rule = Course.objects.values_list("completion_rule", flat=True).get(pk=course_id)
    return counted_retakes(course_id, rule, stored_versions(course_id))


def stale_passes(retakes: Retakes, enrollment_id: OuterRef) -> Q | None:
    """Return a filter on enrollments that lack a counting attempt since a change.

    None when no quiz or exam changed, so there is nothing to filter on.
    """
    stale: Q | None = None
    for lesson_id, since in retakes.items():
        recent = Attempt.objects.filter(
            COUNTING_ATTEMPT,
            enrollment_id=enrollment_id,
            lesson_id=lesson_id,
            started_at__gte=since,
        )
        missing = ~Q(Exists(recent))
        stale = missing if stale is None else stale | missing
    return stale


def retakes_left(enrollment: Enrollment) -> list[int]:
    """Return the ids of the quizzes and exams the learner must pass again.

    Empty, with no query, unless the enrollment is due for recertification.
    Otherwise four queries.
    """
    if enrollment.recertification_version is None:
        return []
    retakes = course_retakes(enrollment.course_id)
    if not retakes:
        return []
    recent = Attempt.objects.filter(
        COUNTING_ATTEMPT, enrollment=enrollment, lesson_id__in=retakes
    ).values_list("lesson_id", "started_at")
    done = {pk for pk, started_at in recent if started_at >= retakes[pk]}
    return [lesson_id for lesson_id in retakes if lesson_id not in done]


def retake_since(enrollment: Enrollment, lesson: Lesson) -> datetime | None:
    """Return when attempts at the lesson start counting again for this learner.

    None, with no query, unless the enrollment is due for recertification
    and the lesson is a quiz or exam. Then None too when no version changed
    the lesson, so every attempt counts.
    """
    if enrollment.recertification_version is None or lesson.kind not in RETAKEN_KINDS:
        return None
    return course_retakes(enrollment.course_id).get(lesson.pk)
