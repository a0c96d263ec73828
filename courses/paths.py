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
from dataclasses import dataclass
from datetime import datetime

from django.db import models, transaction
from django.utils import timezone

from courses.models import (
    Course,
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    LearningPath,
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


# --- The learner's view of their paths -----------------------------------------


class StepState(models.TextChoices):
    COMPLETED = "completed", "Completed"
    OPEN = "open", "Open"
    # Every prerequisite is completed, but the enrollment is not there yet,
    # for example for a course added to the path later.
    READY = "ready", "Opens soon"
    LOCKED = "locked", "Locked"
    # Enrolled, but the course is unpublished or the enrollment ended.
    UNAVAILABLE = "unavailable", "Not available"


@dataclass(frozen=True)
class PathStep:
    course: Course
    state: StepState
    # Prerequisites not completed yet, in path order; empty unless locked.
    waiting_for: list[Course]


@dataclass(frozen=True)
class PathOverview:
    path: LearningPath
    enrollment: PathEnrollment
    steps: list[PathStep]
    completed: int


def path_overview(contact_id: int) -> list[PathOverview]:
    """Return the contact's published paths, each course with its state.

    Four queries, however many paths, courses and enrollments the contact
    has: the path enrollments, the path courses, their prerequisites, and
    the contact's course enrollments.
    """
    on_paths = list(
        PathEnrollment.objects.filter(
            contact_id=contact_id, path__is_published=True
        ).select_related("path")
    )
    if not on_paths:
        return []
    path_courses = (
        PathCourse.objects.filter(path_id__in={row.path_id for row in on_paths})
        .select_related("course")
        .prefetch_related("prerequisites")
        .order_by("path_id", "order", "pk")
    )
    steps_by_path: dict[int, list[PathCourse]] = defaultdict(list)
    for step in path_courses:
        steps_by_path[step.path_id].append(step)
    status_by_course = dict(
        Enrollment.objects.filter(contact_id=contact_id).values_list(
            "course_id", "status"
        )
    )

    overview = []
    for row in on_paths:
        steps = [
            _step_state(step, steps_by_path[row.path_id], status_by_course)
            for step in steps_by_path[row.path_id]
        ]
        completed = sum(step.state == StepState.COMPLETED for step in steps)
        overview.append(PathOverview(row.path, row, steps, completed))
    return overview


def _step_state(
    step: PathCourse, path_steps: list[PathCourse], status_by_course: dict[int, str]
) -> PathStep:
    status = status_by_course.get(step.course_id)
    if status == EnrollmentStatus.COMPLETED:
        return PathStep(step.course, StepState.COMPLETED, [])
    if status is not None:
        usable = step.course.is_published and status != EnrollmentStatus.UNENROLLED
        state = StepState.OPEN if usable else StepState.UNAVAILABLE
        return PathStep(step.course, state, [])

    required = {course.pk for course in step.prerequisites.all()}
    # Listed in path order, so the learner reads them in the order to take.
    waiting_for = [
        other.course
        for other in path_steps
        if other.course_id in required
        and status_by_course.get(other.course_id) != EnrollmentStatus.COMPLETED
    ]
    state = StepState.LOCKED if waiting_for else StepState.READY
    return PathStep(step.course, state, waiting_for)
