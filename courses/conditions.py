"""Condition kinds over learning: whether a subject started or completed a course.

A contact matches through its own enrollments; an account matches when any
of its contacts does. Only times at or before as_of count, so evaluation as
of a past instant sees the progress known then. Journeys use these kinds as
goals, for example "stop the reminders once the course is started".
"""

from collections.abc import Mapping
from typing import Any

from django.db.models import Exists, OuterRef, Q

from conditions import EvaluationContext, Kind, Param, register
from courses.models import Enrollment

Params = Mapping[str, Any]

COURSE = Param(
    str,
    required=False,
    default="",
    help="Slug of the course; blank for any course.",
)


def _enrollments(context: EvaluationContext, params: Params) -> Any:
    if context.subject == "contact":
        enrollments = Enrollment.objects.filter(contact_id=OuterRef("pk"))
    else:
        enrollments = Enrollment.objects.filter(contact__account_id=OuterRef("pk"))
    if params.get("course"):
        enrollments = enrollments.filter(course__slug=params["course"])
    return enrollments


def compile_course_started(context: EvaluationContext, params: Params) -> Q:
    started = _enrollments(context, params).filter(started_at__lte=context.as_of)
    return Q(Exists(started))


def compile_course_completed(context: EvaluationContext, params: Params) -> Q:
    completed = _enrollments(context, params).filter(completed_at__lte=context.as_of)
    return Q(Exists(completed))


def _course_words(params: Params) -> str:
    return f"course {params['course']}" if params.get("course") else "any course"


register(
    Kind(
        name="course_started",
        reads=frozenset({"learning"}),
        label="Started a course",
        compile=compile_course_started,
        describe=lambda p: f"started {_course_words(p)}",
        params={"course": COURSE},
    )
)
register(
    Kind(
        name="course_completed",
        reads=frozenset({"learning"}),
        label="Completed a course",
        compile=compile_course_completed,
        describe=lambda p: f"completed {_course_words(p)}",
        params={"course": COURSE},
    )
)
