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

Each heartbeat names the page view it comes from (the view's number in
LessonProgress.views) and a sequence number that starts at 1 on every page
view. Only the latest view of the lesson is counted, and only numbers above
the last one counted, so replays and a second tab on the same lesson add
nothing.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from courses.models import EnrollmentStatus, LessonProgress

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


@dataclass(frozen=True)
class HeartbeatResult:
    accepted: bool
    credited_seconds: int
    time_spent_seconds: int
    # Why a heartbeat was not counted: "replayed" for a sequence number
    # counted already, "superseded" for an older page view.
    reason: str = ""


def _integer(data: Mapping[str, str], name: str, maximum: int) -> int:
    raw = data.get(name, "")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"Heartbeat field {name} is {raw!r}; send a whole number from 0 "
            f"to {maximum}."
        ) from None
    if not 0 <= value <= maximum:
        raise ValueError(
            f"Heartbeat field {name} is {value}; send a whole number from 0 "
            f"to {maximum}."
        )
    return value


def parse_heartbeat(data: Mapping[str, str]) -> Heartbeat:
    """Read a heartbeat from posted form fields; raise ValueError naming a bad field.

    Fields: view, sequence (1 or more), active_seconds, and position for
    video lessons. Active seconds above the cap are accepted here and capped
    when recorded.
    """
    sequence = _integer(data, "sequence", MAX_COUNTER)
    if sequence == 0:
        raise ValueError("Heartbeat field sequence is 0; numbers start at 1.")
    position = None
    if data.get("position", "") != "":
        position = _integer(data, "position", MAX_POSITION_SECONDS)
    page_count = None
    if data.get("page_count", "") != "":
        page_count = _integer(data, "page_count", MAX_PAGES)
    return Heartbeat(
        view=_integer(data, "view", MAX_COUNTER),
        sequence=sequence,
        active_seconds=_integer(data, "active_seconds", MAX_COUNTER),
        position_seconds=position,
        pages=_pages(data.get("pages", ""), page_count),
        page_count=page_count,
    )


def _pages(raw: str, page_count: int | None) -> frozenset[int]:
    """Read "1,2,5" into page numbers; raise ValueError for a page out of range."""
    limit = page_count or MAX_PAGES
    pages = set()
    for part in raw.split(",") if raw else []:
        try:
            page = int(part)
        except ValueError:
            raise ValueError(
                f"Heartbeat field pages contains {part!r}; send page numbers "
                "separated by commas, such as 1,2,5."
            ) from None
        if not 1 <= page <= limit:
            raise ValueError(
                f"Heartbeat field pages contains page {page}; pages are numbered "
                f"from 1 to {limit}."
            )
        pages.add(page)
    return frozenset(pages)


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
    allowance = int((now - start).total_seconds()) + ELAPSED_SLACK_SECONDS
    return max(0, min(beat.active_seconds, MAX_HEARTBEAT_SECONDS, allowance))


def credited_until(
    credited_to: datetime | None, credited: int, now: datetime
) -> datetime:
    """Return the instant the credited time reaches after a heartbeat."""
    return _credit_start(credited_to, now) + timedelta(seconds=credited)


def record_heartbeat(
    user_id: int,
    course_slug: str,
    lesson_id: int,
    beat: Heartbeat,
    at: datetime | None = None,
) -> HeartbeatResult | None:
    """Add a heartbeat's capped seconds to the learner's progress on a lesson.

    Returns None when the user has no progress row on this lesson through
    an enrollment of their own in a published course, which the view turns
    into a 404. Two queries: one reads the row through the user's
    enrollment, and one conditional UPDATE writes it only if no other
    heartbeat was counted in between, so concurrent replays count once.
    """
    now = at or timezone.now()
    row = (
        LessonProgress.objects.filter(
            enrollment__contact__user_id=user_id,
            enrollment__course__slug=course_slug,
            enrollment__course__is_published=True,
            lesson_id=lesson_id,
            lesson__module__course_id=F("enrollment__course_id"),
        )
        .exclude(enrollment__status=EnrollmentStatus.UNENROLLED)
        .values_list(
            "pk",
            "heartbeat_view",
            "heartbeat_sequence",
            "heartbeat_at",
            "time_spent_seconds",
            "pages_viewed",
        )
        .first()
    )
    if row is None:
        return None
    progress_id, view, sequence, previous_at, spent, pages_viewed = row

    if beat.view != view:
        return HeartbeatResult(False, 0, spent, "superseded")
    if beat.sequence <= sequence:
        return HeartbeatResult(False, 0, spent, "replayed")

    credited = credit_for(beat, previous_at, now)
    changes: dict[str, object] = {
        "time_spent_seconds": F("time_spent_seconds") + credited,
        "heartbeat_sequence": beat.sequence,
        "heartbeat_at": credited_until(previous_at, credited, now),
        "updated_at": now,
    }
    if beat.position_seconds is not None:
        changes["position_seconds"] = beat.position_seconds
    if beat.page_count is not None:
        changes["page_count"] = beat.page_count
    if not beat.pages <= set(pages_viewed):
        # The conditional UPDATE below fails if another heartbeat wrote in
        # between, so this union never loses pages that it counted.
        changes["pages_viewed"] = sorted(beat.pages | set(pages_viewed))
    written = LessonProgress.objects.filter(
        pk=progress_id, heartbeat_view=view, heartbeat_sequence=sequence
    ).update(**changes)
    if not written:
        # Another heartbeat of the same view was counted between the read
        # and the write; this one is treated as its replay.
        return HeartbeatResult(False, 0, spent, "replayed")
    return HeartbeatResult(True, credited, spent + credited)
