"""Learning paths: putting contacts on a path and opening its courses in turn.

A contact on a path is enrolled in each of the path's courses once every
prerequisite of that course is completed; a course without prerequisites
opens when the contact joins. The path is completed when all its courses
are. Both steps are set-based, so a trigger that puts thousands of
contacts on a path costs the same few queries as one contact.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from courses.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    PathCourse,
    PathEnrollment,
)
from courses.services import enroll_many

logger = logging.getLogger(__name__)


def enroll_in_paths(
    pairs: Iterable[tuple[int, int]],
    *,
    source: str = EnrollmentSource.MANUAL,
    origin: str = "",
    at: datetime | None = None,
) -> set[tuple[int, int]]:
    """Put each (contact id, path id) on its path once; return the pairs added.

    The courses that open at once are enrolled in the same transaction. A
    pair already on its path is left as it is, and the unique constraint
    decides between two transactions that add the same pair.
    """
    requested = set(pairs)
    if not requested:
        return set()
    enrolled_at = at or timezone.now()
    with transaction.atomic():
        PathEnrollment.objects.bulk_create(
            [
                PathEnrollment(
                    contact_id=contact_id,
                    path_id=path_id,
                    source=source,
                    origin=origin,
                    enrolled_at=enrolled_at,
                )
                for contact_id, path_id in sorted(requested)
            ],
            ignore_conflicts=True,
        )
        # The insert reports no ids when conflicts are ignored, so the rows
        # are read back by the values this call wrote.
        written = PathEnrollment.objects.filter(
            contact_id__in={contact_id for contact_id, _ in requested},
            source=source,
            origin=origin,
            enrolled_at=enrolled_at,
        )
        added = set(written.values_list("contact_id", "path_id")) & requested
        open_path_courses({contact_id for contact_id, _ in added}, enrolled_at)
    if added:
        logger.info("Put %s contacts on learning paths (%s)", len(added), origin)
    return added


def open_path_courses(contact_ids: Iterable[int], at: datetime) -> set[tuple[int, int]]:
    """Enroll contacts in the path courses whose prerequisites they completed.

    Also marks completed the paths whose courses are all completed. Returns
    the (contact id, course id) pairs newly enrolled. Called when a contact
    joins a path and whenever one of its course enrollments completes.
    """
    contacts = set(contact_ids)
    on_paths = list(
        PathEnrollment.objects.filter(
            contact_id__in=contacts, completed_at__isnull=True
        ).select_related("path")
    )
    if not on_paths:
        return set()

    steps = _steps_by_path({row.path_id for row in on_paths})
    enrolled, completed = _course_states(contacts)
    to_open: dict[tuple[str, str], set[tuple[int, int]]] = defaultdict(set)
    finished = []
    for row in on_paths:
        path_steps = steps.get(row.path_id, [])
        done = completed.get(row.contact_id, set())
        if path_steps and all(course in done for course, _ in path_steps):
            finished.append(row.pk)
            continue
        for course, prerequisites in path_steps:
            if course in enrolled.get(row.contact_id, set()):
                continue
            if prerequisites <= done:
                origin = f"path:{row.path.slug}"
                to_open[(row.source, origin)].add((row.contact_id, course))

    opened: set[tuple[int, int]] = set()
    for (source, origin), pairs in to_open.items():
        opened |= enroll_many(pairs, source=source, origin=origin, at=at)
    if finished:
        PathEnrollment.objects.filter(pk__in=finished).update(completed_at=at)
        logger.info("Completed %s learning path enrollments", len(finished))
    return opened


def _steps_by_path(path_ids: set[int]) -> dict[int, list[tuple[int, set[int]]]]:
    """Return each path's (course id, prerequisite course ids), in path order."""
    steps = PathCourse.objects.filter(path_id__in=path_ids).prefetch_related(
        "prerequisites"
    )
    by_path: dict[int, list[tuple[int, set[int]]]] = defaultdict(list)
    for step in steps:
        required = {course.pk for course in step.prerequisites.all()}
        by_path[step.path_id].append((step.course_id, required))
    return by_path


def _course_states(
    contacts: set[int],
) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """Return, per contact, the courses enrolled in and the courses completed."""
    enrolled: dict[int, set[int]] = defaultdict(set)
    completed: dict[int, set[int]] = defaultdict(set)
    rows = Enrollment.objects.filter(contact_id__in=contacts).values_list(
        "contact_id", "course_id", "status"
    )
    for contact_id, course_id, status in rows:
        enrolled[contact_id].add(course_id)
        if status == EnrollmentStatus.COMPLETED:
            completed[contact_id].add(course_id)
    return enrolled, completed
