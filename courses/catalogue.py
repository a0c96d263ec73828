"""The course catalogue: which courses a contact may enroll in by themselves.

A course is in a contact's catalogue when it is published, listed in the
catalogue, meant for the lifecycle stage of the contact's account (or for
every stage), and its audience condition matches the contact (or it has
none). Stages belong to lifecycle, which courses may not import, so both
tests go through the condition vocabulary: lifecycle registers the
"lifecycle_stage" kind, which compiles the account's current stage and
checks that stage slugs exist.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper
from django.utils import timezone

from conditions import ConditionError, EvaluationContext, compile_condition, validate
from courses.models import Course, Enrollment, EnrollmentSource, EnrollmentStatus
from courses.services import enroll
from customers.models import Contact

logger = logging.getLogger(__name__)

# The condition kind that lifecycle registers for the account's current stage.
STAGE_KIND = "lifecycle_stage"

# The origin of enrollments that contacts make from the catalogue.
CATALOGUE_ORIGIN = "catalogue"


def stage_condition(slugs: list[str]) -> dict[str, Any]:
    """Return the condition "the account's stage is one of these slugs"."""
    return {"kind": STAGE_KIND, "op": "in", "value": list(slugs)}


def clean_stage_slugs(slugs: list[str]) -> list[str]:
    """Return the slugs stripped, lowercased and without repeats, once they exist.

    Raises ValueError naming a slug that is not a lifecycle stage, with the
    stages that exist. The check is lifecycle's own, through the condition
    vocabulary, so it reads the stages in the database.
    """
    cleaned = list(
        dict.fromkeys(slug.strip().lower() for slug in slugs if slug.strip())
    )
    if not cleaned:
        return []
    try:
        validate(stage_condition(cleaned), "contact")
    except ConditionError as exc:
        raise ValueError(f"Invalid lifecycle stage: {exc.message}") from None
    return cleaned


def audience_of(course: Course) -> dict[str, Any] | None:
    """Return the condition a contact must match to see the course; None for all."""
    parts = []
    if course.lifecycle_stages:
        parts.append(stage_condition(course.lifecycle_stages))
    if course.audience:
        parts.append(course.audience)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"all": parts}


@dataclass(frozen=True)
class CatalogueEntry:
    course: Course
    # The contact's enrollment status in the course; "" when not enrolled.
    status: str


def catalogue_for(
    contact: Contact, tag: str = "", at: datetime | None = None
) -> list[CatalogueEntry]:
    """Return the catalogue courses meant for the contact, by title.

    Three queries, however many courses and enrollments: the catalogue
    courses, one query that evaluates every audience for the contact, and
    the contact's enrollments. A course whose stored condition no longer
    compiles is left out and logged.
    """
    courses = [
        course
        for course in Course.objects.filter(is_published=True, in_catalogue=True)
        if not tag or tag in course.tags
    ]
    visible = _matching_courses(contact, courses, at or timezone.now())
    status_by_course = dict(
        Enrollment.objects.filter(
            contact=contact, course_id__in=[course.pk for course in visible]
        ).values_list("course_id", "status")
    )
    return [
        CatalogueEntry(course=course, status=status_by_course.get(course.pk, ""))
        for course in visible
    ]


def _matching_courses(
    contact: Contact, courses: list[Course], at: datetime
) -> list[Course]:
    """Return the courses whose audience matches the contact, in one query."""
    context = EvaluationContext("contact", at)
    tests: dict[str, ExpressionWrapper[Any] | None] = {}
    for course in courses:
        tree = audience_of(course)
        if tree is None:
            continue
        try:
            compiled = compile_condition(tree, context)
        except ConditionError as exc:
            logger.warning(
                "Course %s left out of the catalogue: its audience is invalid: %s",
                course.pk,
                exc,
            )
            tests[f"course_{course.pk}"] = None
            continue
        tests[f"course_{course.pk}"] = ExpressionWrapper(
            compiled, output_field=BooleanField()
        )

    compiled_tests = {name: test for name, test in tests.items() if test is not None}
    results: dict[str, Any] = {}
    if compiled_tests:
        results = (
            Contact.objects.filter(pk=contact.pk)
            .annotate(**compiled_tests)
            .values(*compiled_tests)
            .get()
        )
    return [
        course
        for course in courses
        if f"course_{course.pk}" not in tests or results.get(f"course_{course.pk}")
    ]


def catalogue_tags(entries: list[CatalogueEntry]) -> list[str]:
    """Return the tags of the listed courses, sorted, for the catalogue's filter."""
    return sorted({tag for entry in entries for tag in entry.course.tags})


def enroll_from_catalogue(
    contact: Contact, slug: str, at: datetime | None = None
) -> Enrollment:
    """Enroll the contact in a course of their catalogue; return the enrollment.

    Enrolling twice returns the existing enrollment. Raises LookupError when
    the course is not in the contact's catalogue, which the portal shows as
    a 404, so the page does not reveal courses meant for others.
    """
    entries = [
        entry for entry in catalogue_for(contact, at=at) if entry.course.slug == slug
    ]
    if not entries:
        raise LookupError(
            f"Course {slug!r} is not in the catalogue of contact {contact.pk}"
        )
    enrollment, created = enroll(
        contact,
        entries[0].course,
        source=EnrollmentSource.MANUAL,
        origin=CATALOGUE_ORIGIN,
        at=at,
    )
    if enrollment.status == EnrollmentStatus.UNENROLLED:
        # A trigger ended this enrollment; the contact's own choice now
        # brings it back with its progress, as a manual enrollment.
        Enrollment.objects.filter(
            pk=enrollment.pk, status=EnrollmentStatus.UNENROLLED
        ).update(
            status=EnrollmentStatus.ACTIVE,
            source=EnrollmentSource.MANUAL,
            origin=CATALOGUE_ORIGIN,
            ended_at=None,
            updated_at=timezone.now(),
        )
        enrollment.refresh_from_db()
        created = True
    if created:
        logger.info(
            "Contact %s enrolled in course %s from the catalogue",
            contact.pk,
            enrollment.course_id,
        )
    return enrollment
