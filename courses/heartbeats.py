"""Time spent on lessons, measured by heartbeats from the lesson page.

The page (static/portal/lesson.js) sends a heartbeat every
HEARTBEAT_INTERVAL_SECONDS while it is visible and the learner is active,
that is, used the mouse, keyboard or touch screen in the last minute or is
playing the video. Each heartbeat reports the active seconds since the
previous one. The server adds them to LessonProgress.time_spent_seconds.
It adds at most MAX_HEARTBEAT_SECONDS per heartbeat. LessonProgress.
heartbeat_at is the instant the credited time reaches: a page view sets it
to the view's time, and each heartbeat moves it on by the seconds it
added. A heartbeat may add only up to ELAPSED_SLACK_SECONDS past now, so
the time of a page view never grows faster than the clock, however often
heartbeats arrive. After a pause the mark moves up to
MAX_HEARTBEAT_SECONDS before now, so a tab left open overnight, a replayed
request or a script that posts in a loop adds at most one interval.

On a PDF lesson, each heartbeat also carries the pages seen so far and the
PDF's number of pages, from the viewer in static/portal/pdf_viewer.js, and
the server adds them to LessonProgress.pages_viewed.

On a video lesson, each heartbeat carries the playback position and the
video's duration; courses.video_watch turns the positions into the watched
share, and watching WATCHED_PERCENT_TO_COMPLETE percent of it completes the
lesson. A field of another lesson kind (position on a PDF, pages on a
video) is rejected.

Each heartbeat names the page view it comes from (the view's number in
LessonProgress.views) and a sequence number that starts at 1 on every page
view. Only the latest view of the lesson is counted, and only numbers above
the last one counted, so replays and a second tab on the same lesson add
nothing.

The heartbeat's write is one conditional UPDATE, committed on its own. A
completion by watching a video follows in its own transaction.
"""

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from courses import video_watch
from courses.models import (
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
from courses.services import complete_lesson

logger = logging.getLogger(__name__)

# How often the page sends a heartbeat while the learner is active.
HEARTBEAT_INTERVAL_SECONDS = 15
# The maximum seconds one heartbeat adds: the interval plus slack for browser
# timers that fire late on a busy machine.
MAX_HEARTBEAT_SECONDS = 20
# Seconds a heartbeat may claim beyond the time since the previous heartbeat
# (or the page view), for the request's travel time and rounding.
ELAPSED_SLACK_SECONDS = 2
# The highest video position accepted, in seconds (24 hours).
MAX_POSITION_SECONDS = 24 * 60 * 60
# The highest view and sequence numbers accepted; the column is 32-bit.
MAX_COUNTER = 2**31 - 1
# The maximum number of pages a PDF lesson may report.
MAX_PAGES = 10_000


@dataclass(frozen=True)
class Heartbeat:
    view: int
    sequence: int
    # Seconds the learner was active since the previous heartbeat, as the page
    # measured them.
    active_seconds: int
    # The video's playback position in whole seconds; None for other lessons.
    position_seconds: int | None
    # PDF lessons: the pages seen so far in this page view, and the PDF's
    # number of pages; empty and None for other lessons.
    pages: frozenset[int] = frozenset()
    page_count: int | None = None
    # Video lessons: the video's duration in whole seconds, when known.
    duration_seconds: int | None = None


@dataclass(frozen=True)
class HeartbeatResult:
    accepted: bool
    credited_seconds: int
    time_spent_seconds: int
    # Why a heartbeat was not counted: "replayed" for a sequence number
    # counted already, "superseded" for an older page view.
    reason: str = ""
    # Whether the lesson is completed after this heartbeat.
    completed: bool = False


# Whole numbers as the page sends them: ASCII digits only. int() alone would
# also accept other scripts' digits ("١٢"), underscores ("1_000"), signs and
# spaces. Ten digits cover every limit below.
WHOLE_NUMBER = re.compile(r"[0-9]{1,10}", re.ASCII)


def _whole_number(raw: str) -> int | None:
    return int(raw) if WHOLE_NUMBER.fullmatch(raw) else None


def _integer(data: Mapping[str, str], name: str, maximum: int) -> int:
    raw = data.get(name, "")
    value = _whole_number(raw) if isinstance(raw, str) else None
    if value is None or value > maximum:
        raise ValueError(
            f"Heartbeat field {name} is {raw!r}; send a whole number from 0 "
            f"to {maximum} in the digits 0-9."
        )
    return value


def _optional_integer(data: Mapping[str, str], name: str, maximum: int) -> int | None:
    if data.get(name, "") == "":
        return None
    return _integer(data, name, maximum)


def parse_heartbeat(data: Mapping[str, str]) -> Heartbeat:
    """Read a heartbeat from posted form fields; raise ValueError naming a bad field.

    Fields: view, sequence (1 or more), active_seconds; position and
    duration for video lessons; pages and page_count for PDF lessons.
    Active seconds above the cap are accepted here and capped when
    recorded.
    """
    sequence = _integer(data, "sequence", MAX_COUNTER)
    if sequence == 0:
        raise ValueError("Heartbeat field sequence is 0; numbers start at 1.")
    page_count = _optional_integer(data, "page_count", MAX_PAGES)
    pages = _pages(data.get("pages", ""), page_count)
    if pages and page_count is None:
        raise ValueError(
            "Heartbeat field page_count is missing; send the PDF's number of "
            "pages with the pages seen."
        )
    return Heartbeat(
        view=_integer(data, "view", MAX_COUNTER),
        sequence=sequence,
        active_seconds=_integer(data, "active_seconds", MAX_COUNTER),
        position_seconds=_optional_integer(data, "position", MAX_POSITION_SECONDS),
        pages=pages,
        page_count=page_count,
        duration_seconds=_optional_integer(data, "duration", MAX_POSITION_SECONDS),
    )


def _pages(raw: str, page_count: int | None) -> frozenset[int]:
    """Read "1,2,5" into page numbers; raise ValueError for a page out of range."""
    limit = page_count or MAX_PAGES
    pages = set()
    for part in raw.split(",") if raw else []:
        page = _whole_number(part)
        if page is None:
            raise ValueError(
                f"Heartbeat field pages contains {part!r}; send page numbers "
                "in the digits 0-9 separated by commas, such as 1,2,5."
            )
        if not 1 <= page <= limit:
            raise ValueError(
                f"Heartbeat field pages contains page {page}; pages are numbered "
                f"from 1 to {limit}."
            )
        pages.add(page)
    return frozenset(pages)


# The heartbeat fields each lesson kind may send, besides view, sequence
# and active_seconds.
VIDEO_FIELDS = ("position", "duration")
PDF_FIELDS = ("pages", "page_count")


def check_fields_for_kind(beat: Heartbeat, lesson_id: int, kind: str) -> None:
    """Raise ValueError naming a field that the lesson's kind does not take."""
    sent = {
        "position": beat.position_seconds is not None,
        "duration": beat.duration_seconds is not None,
        "pages": bool(beat.pages),
        "page_count": beat.page_count is not None,
    }
    allowed = {LessonKind.VIDEO: VIDEO_FIELDS, LessonKind.PDF: PDF_FIELDS}
    for name, present in sent.items():
        if present and name not in allowed.get(LessonKind(kind), ()):
            owner = "video" if name in VIDEO_FIELDS else "PDF"
            raise ValueError(
                f"Heartbeat field {name} is for {owner} lessons only, and lesson "
                f"{lesson_id} is a {LessonKind(kind).label} lesson; leave it out."
            )


def _credit_start(credited_to: datetime | None, now: datetime) -> datetime:
    """Return the instant a heartbeat's seconds are counted from.

    It is never more than MAX_HEARTBEAT_SECONDS before now, so the time that
    passed with no heartbeat, such as a night with the tab hidden, cannot be
    claimed later.
    """
    floor = now - timedelta(seconds=MAX_HEARTBEAT_SECONDS)
    return floor if credited_to is None else max(credited_to, floor)


def credit_for(beat: Heartbeat, credited_to: datetime | None, now: datetime) -> int:
    """Return the seconds a heartbeat adds: its active seconds, capped twice.

    The caps are MAX_HEARTBEAT_SECONDS and the whole seconds from the
    instant the credited time reaches (credited_to) to now, plus
    ELAPSED_SLACK_SECONDS.
    """
    start = _credit_start(credited_to, now)
    # Rounded down, not toward zero: when the credited time is already
    # ahead of now, as the slack allows, truncating would add a second.
    elapsed = math.floor((now - start).total_seconds())
    allowance = elapsed + ELAPSED_SLACK_SECONDS
    return max(0, min(beat.active_seconds, MAX_HEARTBEAT_SECONDS, allowance))


def credited_until(
    credited_to: datetime | None, credited: int, now: datetime
) -> datetime:
    """Return the instant the credited time reaches after a heartbeat."""
    return _credit_start(credited_to, now) + timedelta(seconds=credited)


def record_heartbeat(
    contact_id: int,
    course_slug: str,
    lesson_id: int,
    beat: Heartbeat,
    at: datetime | None = None,
) -> HeartbeatResult | None:
    """Add a heartbeat's capped seconds to the learner's progress on a lesson.

    Returns None when the contact has no progress row on this lesson through
    an enrollment of their own in a published course, which the view turns
    into a 404. Raises ValueError for a field the lesson's kind does not
    take. Two queries: one reads the row by lesson and contact through the
    enrollment, and one conditional UPDATE writes it only if no other
    heartbeat was counted in between, so concurrent replays count once.
    Watching WATCHED_PERCENT_TO_COMPLETE percent of a video completes the
    lesson, with complete_lesson's queries.
    """
    if not fits_bigint(lesson_id):
        # No row has such an id, and the queries below would fail on it.
        return None
    now = at or timezone.now()
    counted = _record_in_one_statement(contact_id, course_slug, lesson_id, beat, now)
    if counted is not None:
        return counted

    row = _progress_row(contact_id, course_slug, lesson_id)
    if row is None:
        return None
    check_fields_for_kind(beat, lesson_id, row["lesson__kind"])
    spent = row["time_spent_seconds"]

    if beat.view != row["heartbeat_view"]:
        return HeartbeatResult(False, 0, spent, "superseded")
    if beat.sequence <= row["heartbeat_sequence"]:
        return HeartbeatResult(False, 0, spent, "replayed")

    credited = credit_for(beat, row["heartbeat_at"], now)
    changes: dict[str, object] = {
        "time_spent_seconds": F("time_spent_seconds") + credited,
        "heartbeat_sequence": beat.sequence,
        "heartbeat_at": credited_until(row["heartbeat_at"], credited, now),
        "updated_at": now,
    }
    if row["lesson__kind"] == LessonKind.PDF:
        changes.update(_page_changes(beat, row))
    watched = False
    if row["lesson__kind"] == LessonKind.VIDEO:
        video_changes, watched = _video_changes(beat, row, credited)
        changes.update(video_changes)

    if not _write(row, changes):
        # Another heartbeat of the same view was counted between the read
        # and the write; this one is treated as its replay.
        return HeartbeatResult(False, 0, spent, "replayed")

    completed = row["completed_at"] is not None
    if watched and not completed:
        _complete_watched_video(row["enrollment_id"], lesson_id, now)
        completed = True
    return HeartbeatResult(True, credited, spent + credited, completed=completed)


# Most heartbeats come from lessons whose only progress is time: no video
# position and no PDF pages. On PostgreSQL such a heartbeat is counted by
# one statement that finds the row, checks the page view and sequence
# number, computes the credit as credit_for and credited_until do, and
# writes it. The row is locked by FOR UPDATE, and PostgreSQL checks its
# conditions again on the latest version after waiting for the lock, so
# concurrent replays still count once. A heartbeat it does not count
# (another kind of lesson, a replay, an older page view, a lesson that is
# not the learner's) takes the general path, which returns the reason.
ONE_STATEMENT = CounterStatement.marked(f"""WITH locked AS (
  SELECT progress.id,
    GREATEST(progress.heartbeat_at, %(floor)s::timestamptz) AS credit_start
  FROM {LessonProgress._meta.db_table} progress
  JOIN {Enrollment._meta.db_table} enrollment
    ON enrollment.id = progress.enrollment_id
  JOIN {Course._meta.db_table} course ON course.id = enrollment.course_id
  JOIN {Lesson._meta.db_table} lesson ON lesson.id = progress.lesson_id
  JOIN {Module._meta.db_table} module
    ON module.id = lesson.module_id AND module.course_id = enrollment.course_id
  WHERE enrollment.contact_id = %(contact)s::bigint
    AND enrollment.status <> %(unenrolled)s::text
    AND course.slug = %(slug)s::text
    AND course.is_published
    AND progress.lesson_id = %(lesson)s::bigint
    AND lesson.kind NOT IN (%(video)s::text, %(pdf)s::text)
    AND progress.heartbeat_view = %(view)s::integer
    AND progress.heartbeat_sequence < %(sequence)s::integer
  FOR UPDATE OF progress
), credit AS (
  SELECT id, credit_start, GREATEST(0, LEAST(
    %(active)s::integer,
    %(cap)s::integer,
    floor(extract(epoch FROM %(now)s::timestamptz - credit_start))::integer
      + %(slack)s::integer
  )) AS seconds
  FROM locked
)
UPDATE {LessonProgress._meta.db_table} progress
SET time_spent_seconds = progress.time_spent_seconds + credit.seconds,
    heartbeat_sequence = %(sequence)s::integer,
    heartbeat_at = credit.credit_start + make_interval(secs => credit.seconds),
    updated_at = %(now)s::timestamptz
FROM credit
WHERE progress.id = credit.id
RETURNING credit.seconds, progress.time_spent_seconds,
  progress.completed_at{COMMIT_COLUMN}""")


def _record_in_one_statement(
    contact_id: int, course_slug: str, lesson_id: int, beat: Heartbeat, now: datetime
) -> HeartbeatResult | None:
    """Count a time-only heartbeat in one statement.

    Returns None when the heartbeat takes the general path instead.
    """
    if connection.vendor != "postgresql" or _carries_media_fields(beat):
        return None
    params = one_statement_params(contact_id, course_slug, lesson_id, beat, now)
    counted = fetch_counted(ONE_STATEMENT, params)
    if counted is None:
        return None
    credited, spent, completed_at = counted
    return HeartbeatResult(True, credited, spent, completed=completed_at is not None)


def one_statement_params(
    contact_id: int, course_slug: str, lesson_id: int, beat: Heartbeat, now: datetime
) -> dict[str, int | str | datetime]:
    """Return ONE_STATEMENT's parameters for a heartbeat received at ``now``."""
    return {
        "contact": contact_id,
        "unenrolled": EnrollmentStatus.UNENROLLED.value,
        "slug": course_slug,
        "lesson": lesson_id,
        "video": LessonKind.VIDEO.value,
        "pdf": LessonKind.PDF.value,
        "view": beat.view,
        "sequence": beat.sequence,
        "floor": now - timedelta(seconds=MAX_HEARTBEAT_SECONDS),
        "active": beat.active_seconds,
        "cap": MAX_HEARTBEAT_SECONDS,
        "now": now,
        "slack": ELAPSED_SLACK_SECONDS,
    }


def _carries_media_fields(beat: Heartbeat) -> bool:
    return (
        beat.position_seconds is not None
        or beat.duration_seconds is not None
        or bool(beat.pages)
        or beat.page_count is not None
    )


# The heartbeat's read as fixed SQL: in a single-process profile, building
# the same query from ORM filters took several times as long as PostgreSQL
# took to plan and run it. It joins progress,
# enrollment, course, lesson and module, and filters on the enrollment's
# contact id, so the contact and user tables stay out. The unique
# (contact, course) enrollment index and the progress rows of that
# enrollment find the row.
PROGRESS_ROW_SQL = f"""SELECT progress.*, lesson.kind AS lesson_kind
FROM {LessonProgress._meta.db_table} progress
JOIN {Enrollment._meta.db_table} enrollment
  ON enrollment.id = progress.enrollment_id
JOIN {Course._meta.db_table} course ON course.id = enrollment.course_id
JOIN {Lesson._meta.db_table} lesson ON lesson.id = progress.lesson_id
JOIN {Module._meta.db_table} module
  ON module.id = lesson.module_id AND module.course_id = enrollment.course_id
WHERE enrollment.contact_id = %s
  AND enrollment.status <> %s
  AND course.slug = %s
  AND course.is_published = %s
  AND progress.lesson_id = %s"""

# The progress fields a heartbeat reads.
ROW_FIELDS = (
    "enrollment_id",
    "heartbeat_view",
    "heartbeat_sequence",
    "heartbeat_at",
    "time_spent_seconds",
    "position_seconds",
    "pages_viewed",
    "page_count",
    "watched_intervals",
    "duration_seconds",
    "completed_at",
)


def _progress_row(
    contact_id: int, course_slug: str, lesson_id: int
) -> Mapping[str, Any] | None:
    """Read the contact's progress row on a lesson of a course they may open."""
    params = [
        contact_id,
        EnrollmentStatus.UNENROLLED.value,
        course_slug,
        True,
        lesson_id,
    ]
    # A raw queryset still converts each column as its model field does,
    # such as JSON and SQLite's text datetimes.
    found = next(iter(LessonProgress.objects.raw(PROGRESS_ROW_SQL, params)), None)
    if found is None:
        return None
    row = {name: getattr(found, name) for name in ROW_FIELDS}
    row["pk"] = found.pk
    row["lesson__kind"] = getattr(found, "lesson_kind")  # noqa: B009
    return row


def _write(row: Mapping[str, Any], changes: dict[str, object]) -> bool:
    """Apply the changes unless another heartbeat wrote first; return whether written.

    One UPDATE in autocommit, so the heartbeat needs no BEGIN, SET LOCAL
    or COMMIT round trips. It commits synchronously: turning
    synchronous_commit off for it made no measurable difference on the
    benchmark machine (docs/benchmarks.md).
    """
    written = LessonProgress.objects.filter(
        pk=row["pk"],
        heartbeat_view=row["heartbeat_view"],
        heartbeat_sequence=row["heartbeat_sequence"],
    ).update(**changes)
    return bool(written)


def _page_changes(beat: Heartbeat, row: Mapping[str, Any]) -> dict[str, object]:
    """Return the PDF page fields to write: the union of pages, within page_count.

    Pages past the PDF's current page count are dropped, so a PDF replaced
    by a shorter one never shows more pages viewed than it has. The
    conditional UPDATE fails if another heartbeat wrote in between, so the
    union never loses pages that it counted.
    """
    stored = row["pages_viewed"]
    known = {page for page in stored if isinstance(page, int)} if stored else set()
    page_count = beat.page_count if beat.page_count is not None else row["page_count"]
    pages = known | beat.pages
    if isinstance(page_count, int):
        pages = {page for page in pages if 1 <= page <= page_count}
    changes: dict[str, object] = {}
    if beat.page_count is not None:
        changes["page_count"] = beat.page_count
    if pages != known or not isinstance(stored, list):
        changes["pages_viewed"] = sorted(pages)
    return changes


def _video_changes(
    beat: Heartbeat, row: Mapping[str, Any], credited: int
) -> tuple[dict[str, object], bool]:
    """Return the video fields to write and whether the watched share is reached.

    The intervals and the duration are stored in watched_intervals and
    duration_seconds (see courses.video_watch).
    """
    if beat.position_seconds is None:
        return {}, False
    previous = row["position_seconds"]
    duration = beat.duration_seconds or row["duration_seconds"]
    intervals = video_watch.stored_intervals(row["watched_intervals"])
    played = video_watch.played_interval(
        previous if isinstance(previous, int) else 0, beat.position_seconds, credited
    )
    if played is not None:
        intervals = video_watch.merge([*intervals, played])
    changes: dict[str, object] = {
        "position_seconds": beat.position_seconds,
        "watched_intervals": [list(interval) for interval in intervals],
    }
    if beat.duration_seconds:
        changes["duration_seconds"] = beat.duration_seconds
    watched = video_watch.is_watched(
        intervals, duration if isinstance(duration, int) else None
    )
    return changes, watched


def _complete_watched_video(enrollment_id: int, lesson_id: int, at: datetime) -> None:
    # complete_lesson locks the enrollment in its own transaction, after
    # the heartbeat's UPDATE committed.
    enrollment = Enrollment.objects.select_related("course").get(pk=enrollment_id)
    lesson = Lesson.objects.select_related("module").get(pk=lesson_id)
    complete_lesson(enrollment, lesson, at=at)
    logger.info(
        "Completed video lesson %s for enrollment %s by watching it",
        lesson_id,
        enrollment_id,
    )
