"""What the lesson page shows, read and counted as one page view.

A learner's page view of a lesson is counted (courses.services) before the
page is drawn, so the page shows the view's own number and the latest
progress. Most page views are repeat views: the learner has a progress row
on the lesson and has reached it before. Such a view changes only
counters. On PostgreSQL ``repeat_view_in_one_statement`` counts it and
reads everything the page shows in one prepared statement. The statement
returns the enrollment, its course, the lesson with its module, the
counted progress row, and the lessons before and after in course order.

Every other view takes ``count_view_and_read``, the general path: a first
view, a lesson past the furthest one, a lesson whose page reads more (a
checklist, an assessment or a live session), and any view on SQLite. The
general path is the specification. The tests compare both paths on the
same states and require identical pages and rows.
"""

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model
from django.db.models.expressions import Col
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from courses.content import tick_by_events
from courses.models import (
    ASSESSMENT_KINDS,
    Course,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonKind,
    LessonProgress,
    Module,
)
from courses.prepared import (
    COMMIT_COLUMN,
    CounterStatement,
    fetch_counted,
    fits_bigint,
)
from courses.services import (
    count_repeat_view,
    course_lessons,
    course_outline,
    enrollments_for,
    record_lesson_view,
)
from customers.models import Contact

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)

# Kinds whose page reads more than the lesson and its progress row: the
# checklist ticks steps by usage events, assessments read questions and
# attempts, and a live session reads the learner's time zone. Their views
# take the general path.
GENERAL_PATH_KINDS = (*ASSESSMENT_KINDS, LessonKind.CHECKLIST, LessonKind.LIVE_SESSION)


@dataclass(frozen=True)
class LessonPage:
    """A lesson and the learner's progress, as one page view shows them.

    ``progress`` is None for a HEAD request, which counts no view.
    ``enrollment.course`` and ``lesson.module`` are loaded.
    """

    enrollment: Enrollment
    lesson: Lesson
    progress: LessonProgress | None
    previous_id: int | None
    next_id: int | None


def count_view_and_read(
    contact: Contact,
    slug: str,
    lesson_id: int,
    count_view: bool = True,
    at: datetime | None = None,
) -> LessonPage:
    """Count a view of a lesson (unless ``count_view`` is false) and read its page.

    Raises Http404 unless the lesson belongs to a published course the
    contact is enrolled in. Five queries for a repeat view of a lesson
    whose kind reads nothing more.
    """
    enrollment = enrolled_course(contact, slug)
    enrollment.contact = contact
    # The outline's lessons, read once: the current lesson is one of them.
    lessons = course_lessons(enrollment.course_id)
    current = next((lesson for lesson in lessons if lesson.pk == lesson_id), None)
    if current is None:
        raise Http404("No such lesson in this course.")
    if count_view:
        # Before the view is recorded, so the progress shown includes a
        # completion by the last step.
        if current.kind == LessonKind.CHECKLIST:
            tick_by_events(enrollment, current, at=at)
        # A repeat view costs one UPDATE; a first view or one that moves
        # the furthest lesson takes the locked transaction.
        if not count_repeat_view(enrollment, current, at=at):
            record_lesson_view(enrollment, current, at=at)

    # The outline reads every progress row of the enrollment after the
    # view is counted, so the current lesson's row comes from it.
    entries = [
        entry
        for module in course_outline(enrollment, lessons)
        for entry in module.lessons
    ]
    index = next(i for i, entry in enumerate(entries) if entry.lesson.pk == lesson_id)
    return LessonPage(
        enrollment=enrollment,
        lesson=current,
        progress=entries[index].progress if count_view else None,
        previous_id=entries[index - 1].lesson.pk if index > 0 else None,
        next_id=entries[index + 1].lesson.pk if index + 1 < len(entries) else None,
    )


def enrolled_course(contact: Contact, slug: str) -> Enrollment:
    """Find the contact's enrollment in a course, with its furthest lesson, or 404."""
    return get_object_or_404(
        enrollments_for(contact).select_related("furthest_lesson__module"),
        course__slug=slug,
    )


def _columns(alias: str, model: type[Model]) -> str:
    return ", ".join(
        f'{alias}."{field.column}"' for field in model._meta.concrete_fields
    )


def _order(module: str, lesson: str) -> str:
    # courses.services.LESSON_ORDER as a row value.
    return f'({module}."order", {module}.id, {lesson}."order", {lesson}.id)'


_PROGRESS = LessonProgress._meta.db_table
_ENROLLMENT = Enrollment._meta.db_table
_COURSE = Course._meta.db_table
_LESSON = Lesson._meta.db_table
_MODULE = Module._meta.db_table


def _neighbour_sql(comparison: str, direction: str) -> str:
    return f"""(SELECT o.id FROM {_LESSON} o
    JOIN {_MODULE} om ON om.id = o.module_id
    WHERE om.course_id = m.course_id
      AND {_order("om", "o")} {comparison} {_order("m", "l")}
    ORDER BY om."order" {direction}, om.id {direction},
      o."order" {direction}, o.id {direction}
    LIMIT 1)"""


# The conditions of courses.services.count_repeat_view: a progress row on a
# lesson of the enrollment's course, a started enrollment, and a lesson not
# past the furthest one. The view's counters are set as there. The UPDATE
# returns the row as written; the other tables are read as they were when
# the statement began, which no page view changes.
#
# The aliases are short because psycopg (3.3) keeps the parsed form of a
# statement only up to 4,096 bytes. Parsing this one again took about 30 µs
# of CPU on every page view, measured in one process. p: progress,
# e: enrollment, c: course, l: lesson, m: module, f and fm: the furthest
# lesson and its module, o and om: a neighbouring lesson and its module,
# v: the progress row as the UPDATE wrote it.
REPEAT_VIEW = CounterStatement.marked(f"""WITH target AS (
  SELECT p.id
  FROM {_ENROLLMENT} e
  JOIN {_COURSE} c ON c.id = e.course_id
  JOIN {_LESSON} l ON l.id = %(lesson)s::bigint
  JOIN {_MODULE} m ON m.id = l.module_id AND m.course_id = e.course_id
  JOIN {_PROGRESS} p ON p.enrollment_id = e.id AND p.lesson_id = l.id
  WHERE e.contact_id = %(contact)s::bigint
    AND e.status <> %(unenrolled)s::text
    AND e.started_at IS NOT NULL
    AND c.slug = %(slug)s::text
    AND c.is_published
    AND l.kind <> ALL (%(general_kinds)s::text[])
    AND {_order("m", "l")} <= (
      SELECT fm."order", fm.id, f."order", f.id
      FROM {_LESSON} f JOIN {_MODULE} fm ON fm.id = f.module_id
      WHERE f.id = e.furthest_lesson_id)
), v AS (
  UPDATE {_PROGRESS} p
  SET views = p.views + 1,
    heartbeat_view = p.views + 1,
    heartbeat_sequence = 0,
    heartbeat_at = %(now)s::timestamptz,
    updated_at = %(now)s::timestamptz
  FROM target
  WHERE p.id = target.id
  RETURNING {_columns("p", LessonProgress)}
)
SELECT {_columns("v", LessonProgress)},
  {_columns("e", Enrollment)},
  {_columns("c", Course)},
  {_columns("l", Lesson)},
  {_columns("m", Module)},
  {_neighbour_sql("<", "DESC")},
  {_neighbour_sql(">", "ASC")}{COMMIT_COLUMN}
FROM v
JOIN {_ENROLLMENT} e ON e.id = v.enrollment_id
JOIN {_COURSE} c ON c.id = e.course_id
JOIN {_LESSON} l ON l.id = v.lesson_id
JOIN {_MODULE} m ON m.id = l.module_id""")


def repeat_view_in_one_statement(
    contact_id: int, slug: str, lesson_id: int, at: datetime | None = None
) -> LessonPage | None:
    """Count a repeat view of a lesson and read its page in one statement.

    Returns None, having written nothing, when the view takes the general
    path instead (see the module's docstring), including every view on
    a database other than PostgreSQL. So does a lesson id too large for a
    bigint: the general path returns 404 for it, as for any unknown id.
    """
    if connection.vendor != "postgresql" or not fits_bigint(lesson_id):
        return None
    now = at or timezone.now()
    row = fetch_counted(
        REPEAT_VIEW, repeat_view_params(contact_id, slug, lesson_id, now)
    )
    if row is None:
        return None
    return _page_from_row(row)


def repeat_view_params(
    contact_id: int, slug: str, lesson_id: int, now: datetime
) -> dict[str, Any]:
    """Return REPEAT_VIEW's parameters for a view of a lesson at ``now``."""
    return {
        "contact": contact_id,
        "unenrolled": EnrollmentStatus.UNENROLLED.value,
        "slug": slug,
        "lesson": lesson_id,
        "general_kinds": [str(kind) for kind in GENERAL_PATH_KINDS],
        "now": now,
    }


def _page_from_row(row: tuple[Any, ...]) -> LessonPage:
    """Build the models from the statement's columns, in the SELECT's order."""
    progress, start = _instance(LessonProgress, row, 0)
    enrollment, start = _instance(Enrollment, row, start)
    course, start = _instance(Course, row, start)
    lesson, start = _instance(Lesson, row, start)
    module, start = _instance(Module, row, start)
    enrollment.course = course
    lesson.module = module
    progress.enrollment = enrollment
    progress.lesson = lesson
    previous_id, next_id = row[start:]
    return LessonPage(
        enrollment=enrollment,
        lesson=lesson,
        progress=progress,
        previous_id=previous_id,
        next_id=next_id,
    )


def _instance(model: type[M], row: tuple[Any, ...], start: int) -> tuple[M, int]:
    """Build a model from its columns at ``start``; return it and the next start.

    The values pass through the fields' converters, as the ORM's queries do
    (a JSON field's text becomes its value).
    """
    fields = model._meta.concrete_fields
    end = start + len(fields)
    values = list(row[start:end])
    for index, expression, converters in _converters(model):
        for converter in converters:
            values[index] = converter(values[index], expression, connection)
    names = [field.attname for field in fields]
    return model.from_db(connection.alias, names, values), end


@functools.cache
def _converters(model: type[Model]) -> list[tuple[int, Col, list[Any]]]:
    """Return (column index, column, converters) for the model's converted columns."""
    converted = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(
            column
        ) + column.get_db_converters(connection)
        if converters:
            converted.append((index, column, converters))
    return converted
